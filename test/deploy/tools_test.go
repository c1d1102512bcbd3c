package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// tools are the paths scripts/deploy-tools.sh installed.
type tools struct{ helm, kubeconform, schemas string }

// repoRoot is the checkout this test file is in.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// findTools locates helm, kubeconform and the schemas: the KILN_HELM, KILN_KUBECONFORM
// and KILN_KUBE_SCHEMAS variables world.sh prints, else what `scripts/deploy-tools.sh
// env` says is cached. It skips the test when one is missing (fails it under
// KILN_TEST_WORLD_REQUIRED=1).
func findTools(t *testing.T) tools {
	t.Helper()
	env := map[string]string{}
	for _, k := range []string{"KILN_HELM", "KILN_KUBECONFORM", "KILN_KUBE_SCHEMAS"} {
		env[k] = os.Getenv(k)
	}
	if env["KILN_HELM"] == "" || env["KILN_KUBECONFORM"] == "" || env["KILN_KUBE_SCHEMAS"] == "" {
		out, err := exec.Command(filepath.Join(repoRoot(t), "scripts", "deploy-tools.sh"), "env").Output()
		if err != nil {
			t.Logf("scripts/deploy-tools.sh env: %v", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
			if ok && env[k] == "" {
				env[k] = v
			}
		}
	}
	var missing []string
	for k, v := range env {
		if _, err := os.Stat(v); v == "" || err != nil {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		msg := "deploy tools missing (" + strings.Join(missing, ", ") + "): run scripts/deploy-tools.sh install (scripts/world.sh up does)"
		if os.Getenv("KILN_TEST_WORLD_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tools{env["KILN_HELM"], env["KILN_KUBECONFORM"], env["KILN_KUBE_SCHEMAS"]}
}
