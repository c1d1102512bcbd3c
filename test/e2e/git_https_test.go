package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// gitHTTPSRepo makes a repository whose Dockerfile copies a file that differs
// between main's two commits and branch "feature", and returns its work tree and
// main's first commit.
func gitHTTPSRepo(t *testing.T, reg string) (work, first string) {
	t.Helper()
	work = writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + "/busybox:1.35\nCOPY version /version\nRUN cat /version\n",
		"version":    "one",
	})
	testworld.Git(t, work, "init", "-q", "-b", "main")
	testworld.Git(t, work, "add", "-A")
	testworld.Git(t, work, "commit", "-q", "-m", "one")
	first = testworld.Git(t, work, "rev-parse", "HEAD")
	for _, step := range []struct{ branch, version string }{{"", "two"}, {"feature", "feature"}} {
		if step.branch != "" {
			testworld.Git(t, work, "checkout", "-q", "-b", step.branch)
		}
		if err := os.WriteFile(filepath.Join(work, "version"), []byte(step.version), 0o644); err != nil {
			t.Fatal(err)
		}
		testworld.Git(t, work, "commit", "-q", "-am", step.version)
	}
	testworld.Git(t, work, "checkout", "-q", "main")
	return work, first
}

// TestBuildGitHTTPS builds from a git repository served over TLS (self-signed) by
// the real git http-backend behind basic authentication, with kaniko's variables.
func TestBuildGitHTTPS(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	work, first := gitHTTPSRepo(t, reg)
	srv := testworld.GitHTTP(t, work, testworld.WithGitUser("alice", "s3cret"), testworld.WithGitUser("ghp_token123", ""))
	user := []string{"GIT_USERNAME=alice", "GIT_PASSWORD=s3cret"}
	skipTLS := "--git=insecure-skip-tls=true"

	tests := []struct {
		name    string
		context string
		env     []string
		args    []string
		want    string // the file the build printed; "" expects a failure
		errPart string
	}{
		{name: "username and password", context: srv.URL, env: user, args: []string{skipTLS}, want: "two"},
		{name: "token", context: srv.URL, env: []string{"GIT_TOKEN=ghp_token123"}, args: []string{skipTLS}, want: "two"},
		{name: "branch option", context: srv.URL, env: user, args: []string{"--git=branch=feature,insecure-skip-tls=true"}, want: "feature"},
		{name: "commit fragment", context: srv.URL + "#refs/heads/main#" + first, env: user, args: []string{skipTLS}, want: "one"},
		{name: "wrong password", context: srv.URL, env: []string{"GIT_USERNAME=alice", "GIT_PASSWORD=hunter2"}, args: []string{skipTLS}, errPart: "authentication required"},
		{name: "self-signed certificate", context: srv.URL, env: user, errPart: "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := kilnBuild(t, tt.env, append([]string{"--context", tt.context, "--no-push"}, tt.args...)...)
			if strings.Contains(out, "hunter2") || strings.Contains(out, "s3cret") || strings.Contains(out, "ghp_token123") {
				t.Errorf("output reveals a secret:\n%s", out)
			}
			if tt.want == "" {
				if code == 0 || !strings.Contains(out, tt.errPart) || !strings.Contains(out, srv.URL) {
					t.Fatalf("kiln build exited %d, want a failure naming %s and %q:\n%s", code, srv.URL, tt.errPart, out)
				}
				return
			}
			if code != 0 {
				t.Fatalf("kiln build exited %d:\n%s", code, out)
			}
			if !strings.Contains(out, "\n"+tt.want+"\n") && !strings.Contains(out, "\n"+tt.want) {
				t.Errorf("the build did not print %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestBuildGitPullMethod builds kaniko's git form, git://HOST/path#ref, from the
// real git http-backend: over http with GIT_PULL_METHOD=http, over https (with
// kaniko's credentials and --git options) otherwise.
func TestBuildGitPullMethod(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	work, first := gitHTTPSRepo(t, reg)
	plain := testworld.GitHTTP(t, work, testworld.WithPlainHTTP())
	secure := testworld.GitHTTP(t, work, testworld.WithGitUser("alice", "s3cret"))
	gitForm := func(u string) string {
		return "git://" + strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	}
	user := []string{"GIT_USERNAME=alice", "GIT_PASSWORD=s3cret"}

	tests := []struct {
		name    string
		context string
		env     []string
		args    []string
		want    string // the file the build printed; "" expects a failure
		errPart string
	}{
		{name: "http", context: gitForm(plain.URL) + "#refs/heads/main", env: []string{"GIT_PULL_METHOD=http"}, want: "two"},
		{name: "http commit", context: gitForm(plain.URL) + "#refs/heads/main#" + first, env: []string{"GIT_PULL_METHOD=http"}, want: "one"},
		{name: "http branch option", context: gitForm(plain.URL) + "#refs/heads/main", env: []string{"GIT_PULL_METHOD=http"},
			args: []string{"--git=branch=feature,single-branch=true"}, want: "feature"},
		{name: "https by default", context: gitForm(secure.URL) + "#refs/heads/main", env: user, args: []string{"--git=insecure-skip-tls=true"}, want: "two"},
		{name: "unknown method is https", context: gitForm(secure.URL), env: append([]string{"GIT_PULL_METHOD=ssh"}, user...),
			args: []string{"--git=insecure-skip-tls=true"}, want: "two"},
		{name: "https to an http server", context: gitForm(plain.URL), errPart: "https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := kilnBuild(t, tt.env, append([]string{"--context", tt.context, "--no-push"}, tt.args...)...)
			if strings.Contains(out, "s3cret") {
				t.Errorf("output reveals a secret:\n%s", out)
			}
			if tt.want == "" {
				if code == 0 || !strings.Contains(out, tt.errPart) {
					t.Fatalf("kiln build exited %d, want a failure naming %q:\n%s", code, tt.errPart, out)
				}
				return
			}
			if code != 0 {
				t.Fatalf("kiln build exited %d:\n%s", code, out)
			}
			if !strings.Contains(out, "\n"+tt.want+"\n") && !strings.Contains(out, "\n"+tt.want) {
				t.Errorf("the build did not print %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestServerRemoteGitHTTPS builds remote=https://…/repo.git through kiln serve: the
// server trusts the repository's certificate only through SSL_CERT_FILE, and a
// server without it refuses the certificate with a clear error.
func TestServerRemoteGitHTTPS(t *testing.T) {
	reg := testworld.Registry(t)
	work, _ := gitHTTPSRepo(t, reg)
	srv := testworld.GitHTTP(t, work)
	post := func(s *server, remote string) string {
		t.Helper()
		q := url.Values{"remote": {remote}, "t": {"kiln-e2e/remote-git:" + uniqueTag()}}
		out, err := exec.Command("curl", "-sS", "--unix-socket", s.socket, "-X", "POST",
			"http://localhost/build?"+q.Encode()).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		return string(out)
	}

	// The repository is on loopback, which the server's fetch policy refuses unless allowed.
	untrusting := startServer(t, "--fetch-allow", "127.0.0.1")
	if out := post(untrusting, srv.URL+"#feature"); !strings.Contains(out, "certificate") || strings.Contains(out, "Successfully tagged") {
		t.Errorf("a server without the CA built from the self-signed repository:\n%s", out)
	}

	t.Setenv("SSL_CERT_FILE", srv.CAFile) // inherited by the server started next
	trusting := startServer(t, "--fetch-allow", "127.0.0.1")
	out := post(trusting, srv.URL+"#feature")
	if !strings.Contains(out, "Successfully tagged") || !strings.Contains(out, `feature`) {
		t.Errorf("remote=https build did not succeed:\n%s", out)
	}
}
