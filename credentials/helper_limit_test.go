package credentials_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/nettimeout"
)

// TestCredentialHelperHangs: a docker-credential-* helper that never answers fails
// the lookup at the stall limit, naming the registry and the limit, instead of
// hanging the pull or push that asked.
func TestCredentialHelperHangs(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "helper.pid")
	helper := "#!/bin/sh\necho $$ > " + pidFile + "\nexec sleep 30\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-hang"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore":"hang"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Cleanup(func() { // the helper kiln gave up on: end it, by its PID
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	kc := credentials.Chain(credentials.WithNetLimits(nettimeout.Limits{Stall: 500 * time.Millisecond}))
	repo, err := name.NewRepository("registry.example.test/app")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = kc.Resolve(repo)
	want := "docker config credentials for registry.example.test: the credential helper gave no answer within 500ms (--net-stall-timeout)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Resolve = %v, want an error saying %q", err, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Resolve gave up after %s", took)
	}
}
