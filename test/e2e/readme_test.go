package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// readmeBlocks returns the indented code blocks of README.md's section headed heading
// (up to the next heading), each as its logical lines: a line ending in a backslash
// is joined with the next, as the shell joins them.
func readmeBlocks(t *testing.T, heading string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  [][]string
		cur     []string
		in      bool
		pending string
	)
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			flush()
			in = strings.TrimSpace(strings.TrimLeft(line, "#")) == heading
			continue
		}
		if !in {
			continue
		}
		// Code is indented by four; list continuations by two.
		code, ok := strings.CutPrefix(line, "    ")
		if !ok {
			if strings.TrimSpace(line) != "" {
				flush()
			}
			continue
		}
		code = pending + strings.TrimSpace(code)
		if strings.HasSuffix(code, `\`) {
			pending = strings.TrimSuffix(code, `\`)
			continue
		}
		pending = ""
		cur = append(cur, code)
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatalf("README.md has no code blocks under %q: a test reads them", heading)
	}
	return blocks
}

// TestReadmeServerExamples runs the README's `kiln serve` examples as written against
// a server this test starts, so they cannot rot: the curl build (which failed as
// written once: curl's globbing ate the {} of buildargs) and the docker build and push
// after `make run`. The only substitutions are the ones the README names: the socket
// (out/state/kiln.sock, which `make run` creates) and the context directory (app, .).
// `make run` itself is not run; startServer starts the same serve command.
func TestReadmeServerExamples(t *testing.T) {
	reg := testworld.Registry(t)
	if reg != testworld.DefaultRegistry {
		t.Skipf("the README's examples name %s; the test registry is %s", testworld.DefaultRegistry, reg)
	}
	testworld.Docker(t)
	s := startServer(t)
	ctxDir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + "/busybox:1.35\nARG VERSION\nRUN echo \"version=$VERSION\"\n",
	})
	socketFromMakeRun := "out/state/kiln.sock"
	subst := func(line string) string {
		line = strings.ReplaceAll(line, "$PWD/"+socketFromMakeRun, s.socket)
		line = strings.ReplaceAll(line, socketFromMakeRun, s.socket)
		line = strings.ReplaceAll(line, "tar -C app ", "tar -C "+ctxDir+" ")
		return line
	}
	run := func(lines []string) string {
		t.Helper()
		script := "set -e -o pipefail\n" + strings.Join(lines, "\n")
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = ctxDir // `.` in docker build is the context
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README example failed: %v\n%s\n---\n%s", err, script, out)
		}
		return string(out)
	}

	var curl, docker []string
	for _, b := range readmeBlocks(t, "With curl") {
		for _, l := range b {
			if strings.Contains(l, "curl ") {
				curl = append(curl, subst(l))
			}
		}
	}
	for _, b := range readmeBlocks(t, "Server (`kiln serve`)") {
		if !strings.HasPrefix(b[0], "make run") {
			continue
		}
		for _, l := range b[1:] {
			docker = append(docker, subst(strings.SplitN(l, "  #", 2)[0]))
		}
	}
	if len(curl) != 1 || len(docker) != 2 {
		t.Fatalf("README examples not found where expected: curl %q, after make run %q", curl, docker)
	}

	out := run(curl)
	for _, want := range []string{`version=1`, `{"aux":{"ID":"sha256:`, `Successfully tagged 127.0.0.1:5000/app:1`} {
		if !strings.Contains(out, want) {
			t.Errorf("the README's curl build answered without %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "errorDetail") {
		t.Errorf("the README's curl build failed:\n%s", out)
	}

	out = run(docker)
	for _, want := range []string{"Successfully tagged 127.0.0.1:5000/app:1", "1: digest: sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("the README's docker build and push printed no %q:\n%s", want, out)
		}
	}
}

// TestReadmeKilnBuildExample runs the README's `kiln build` example that needs no
// remote registry (the --no-push one) as written, in a context directory whose
// Dockerfile starts from the test registry's busybox. The substitutions: `kiln` is the
// binary built from this checkout, and --isolation=chroot with a temporary
// --state-dir are appended, because this machine's / must never be a build root.
func TestReadmeKilnBuildExample(t *testing.T) {
	reg := testworld.Registry(t)
	testworld.RequireRoot(t)
	kiln := testworld.KilnBinary(t)
	var line string
	for _, b := range readmeBlocks(t, "Using `kiln build` (kaniko-style)") {
		for _, l := range b {
			if strings.HasPrefix(l, "kiln build -c . --no-push ") {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatal("README.md has no `kiln build -c . --no-push` example under \"Using `kiln build` (kaniko-style)\"")
	}
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo built > /built\n"})
	script := kiln + strings.TrimPrefix(line, "kiln") + " --isolation=chroot --state-dir=" + t.TempDir()
	cmd := exec.Command("bash", "-c", "set -e\n"+script)
	cmd.Dir = ctxDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README example failed: %v\n%s\n---\n%s", err, script, out)
	}
	for _, f := range []string{"app.tar", "out/index.json", "app.digest"} {
		if _, err := os.Stat(filepath.Join(ctxDir, f)); err != nil {
			t.Errorf("the README's kiln build wrote no %s: %v\n%s", f, err, out)
		}
	}
	if d, _ := os.ReadFile(filepath.Join(ctxDir, "app.digest")); !strings.HasPrefix(string(d), "sha256:") {
		t.Errorf("app.digest holds %q, want a digest", d)
	}
}
