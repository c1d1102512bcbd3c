package apiserver

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestReadContextGit clones a remote= git repository served by a real git daemon on
// loopback, with Docker's url#ref:dir syntax.
func TestReadContextGit(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "app", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testworld.Git(t, work, "init", "-q", "-b", "main")
	testworld.Git(t, work, "add", "-A")
	testworld.Git(t, work, "commit", "-q", "-m", "one")
	url := testworld.GitDaemon(t, work)

	req := httptest.NewRequest("POST", "/build", strings.NewReader(""))
	c, aerr := readContext(context.Background(), req, &buildOptions{remote: url + "#main:app"}, filepath.Join(t.TempDir(), "ctx"), "", BuildConfig{})
	if aerr != nil {
		t.Fatalf("readContext: HTTP %d %s", aerr.status, aerr.msg)
	}
	data, name, aerr := readDockerfile(c, "")
	if aerr != nil || name != "Dockerfile" || string(data) != "FROM scratch\n" {
		t.Errorf("Dockerfile %s = %q, %v", name, data, aerr)
	}
}
