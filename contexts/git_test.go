package contexts

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// gitServer is a repository served by a real `git daemon` on loopback.
type gitServer struct {
	url     string // git://127.0.0.1:port/repo.git
	first   string // the commit main started with
	feature string // the tip of branch "feature"
}

// runGit runs git in dir with a fixed identity, failing the test on error.
func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return testworld.Git(t, dir, args...)
}

// startGitServer creates a repository (main: two commits; feature: one more) from
// the tree files writes, and serves it with git daemon.
func startGitServer(t *testing.T, files func(dir string)) gitServer {
	t.Helper()
	work, srv := newGitRepo(t, files)
	srv.url = testworld.GitDaemon(t, work)
	return srv
}

// newGitRepo creates the repository startGitServer serves and returns its work tree
// and commits.
func newGitRepo(t *testing.T, files func(dir string)) (string, gitServer) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	base := t.TempDir()
	work := filepath.Join(base, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	runGit(t, work, "init", "-q", "-b", "main")
	files(work)
	writeFile(t, filepath.Join(work, "version"), "one\n", 0o644)
	runGit(t, work, "add", "-A")
	runGit(t, work, "commit", "-q", "-m", "one")
	first := runGit(t, work, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(work, "version"), "two\n", 0o644)
	runGit(t, work, "commit", "-q", "-am", "two")
	runGit(t, work, "checkout", "-q", "-b", "feature")
	writeFile(t, filepath.Join(work, "version"), "feature\n", 0o644)
	runGit(t, work, "commit", "-q", "-am", "feature")
	feature := runGit(t, work, "rev-parse", "HEAD")
	runGit(t, work, "checkout", "-q", "main")
	return work, gitServer{first: first, feature: feature}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestOpenGit(t *testing.T) {
	t.Parallel()
	srv := startGitServer(t, func(dir string) { writeFile(t, filepath.Join(dir, "sub", "x"), "x\n", 0o644) })
	tests := []struct {
		name    string
		spec    string
		opts    []OpenOption
		version string // content of the file "version"; "" expects an error
		errPart string
	}{
		{name: "default branch", spec: srv.url, version: "two\n"},
		{name: "full ref", spec: srv.url + "#refs/heads/feature", version: "feature\n"},
		{name: "short branch", spec: srv.url + "#feature", version: "feature\n"},
		{name: "--git branch=", spec: srv.url, opts: []OpenOption{WithGit(GitOptions{Branch: "feature", SingleBranch: true})}, version: "feature\n"},
		{name: "ref and commit", spec: srv.url + "#refs/heads/main#" + srv.first, version: "one\n"},
		{name: "commit only", spec: srv.url + "#" + srv.feature, version: "feature\n"},
		{name: "missing ref", spec: srv.url + "#refs/heads/nope", errPart: "refs/heads/nope"},
		{name: "missing short ref", spec: srv.url + "#nope", errPart: "nope"},
		{name: "missing commit", spec: srv.url + "#refs/heads/main#" + strings.Repeat("ab", 20), errPart: "commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Open(context.Background(), tt.spec, append(tt.opts, WithTempDir(t.TempDir()))...)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					c.Close()
					t.Fatalf("Open(%q) = %v, want an error naming %q", tt.spec, err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.spec, err)
			}
			defer c.Close()
			got, err := os.ReadFile(filepath.Join(c.Dir, "version"))
			if err != nil || string(got) != tt.version {
				t.Errorf("version = %q, %v; want %q", got, err, tt.version)
			}
			if _, err := os.Stat(filepath.Join(c.Dir, ".git")); !os.IsNotExist(err) {
				t.Errorf(".git is still in the context: %v", err)
			}
		})
	}
}

func TestOpenGitSubPathAndClose(t *testing.T) {
	t.Parallel()
	srv := startGitServer(t, func(dir string) { writeFile(t, filepath.Join(dir, "sub", "x"), "x\n", 0o644) })
	tmp := t.TempDir()
	c, err := Open(context.Background(), srv.url, WithSubPath("sub"), WithTempDir(tmp))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(c.Dir, "x")); err != nil || string(got) != "x\n" {
		t.Errorf("sub/x = %q, %v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Close left %v in the temporary directory", left)
	}
	c, err = Open(context.Background(), srv.url+"#main:sub", WithTempDir(tmp)) // Docker's url#ref:dir
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(c.Dir, "x")); err != nil || string(got) != "x\n" {
		t.Errorf("#main:sub: x = %q, %v", got, err)
	}
	c.Close()
	if _, err := Open(context.Background(), srv.url, WithSubPath("missing"), WithTempDir(tmp)); err == nil {
		t.Error("a missing sub-path opened")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed Open left %v behind", left)
	}
}
