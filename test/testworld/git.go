package testworld

import (
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Git runs git in dir with a fixed identity and no user or system configuration, and
// returns its trimmed output; the test fails when git does.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// GitDaemon serves a bare clone of the repository in work with a real `git daemon` on a
// free loopback port, stopped (with every process it started) when the test ends, and
// returns its URL,
// git://127.0.0.1:PORT/repo.git. Tests skip when git is not installed.
func GitDaemon(t testing.TB, work string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	srv := filepath.Join(t.TempDir(), "srv")
	Git(t, work, "clone", "-q", "--bare", work, filepath.Join(srv, "repo.git"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// `git daemon` runs git-daemon as a child: Start stops the whole group.
	Start(t, exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
		fmt.Sprintf("--port=%d", port), "--base-path="+srv, srv))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "git://" + addr + "/repo.git"
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon did not listen on %s: %v", addr, err)
		}
	}
}

// GitHTTPOption configures GitHTTP.
type GitHTTPOption func(*gitHTTPSettings)

type gitHTTPSettings struct {
	users map[string]string // user -> password; empty: no authentication
	plain bool
}

// WithGitUser makes GitHTTP demand HTTP basic authentication, accepting this user
// and password (repeat for several; an empty password is a token sent as the user).
func WithGitUser(user, password string) GitHTTPOption {
	return func(s *gitHTTPSettings) { s.users[user] = password }
}

// WithPlainHTTP serves GitHTTP over plain HTTP instead of TLS.
func WithPlainHTTP() GitHTTPOption {
	return func(s *gitHTTPSettings) { s.plain = true }
}

// GitHTTPServer is a repository served by GitHTTP.
type GitHTTPServer struct {
	// URL is the repository's address, https://127.0.0.1:PORT/repo.git (http:// with
	// WithPlainHTTP).
	URL string
	// CAFile is a PEM file holding the server's self-signed certificate, for clients
	// that should trust it (SSL_CERT_FILE); "" with WithPlainHTTP.
	CAFile string
	// root is the directory the server exports repositories from.
	root string
}

// AddRepo serves a bare clone of the repository in work as NAME (e.g. "parent.git")
// beside repo.git, and returns its URL. A repository whose submodule is repo.git is
// made this way: its .gitmodules needs the server's address first.
func (s GitHTTPServer) AddRepo(t testing.TB, name, work string) string {
	t.Helper()
	Git(t, work, "clone", "-q", "--bare", work, filepath.Join(s.root, name))
	return strings.TrimSuffix(s.URL, "repo.git") + name
}

// GitHTTP serves a bare clone of the repository in work with the real `git
// http-backend` (git's smart HTTP server, run as a CGI program by net/http/cgi) on a
// free loopback port, over TLS with a self-signed certificate unless WithPlainHTTP,
// until the test ends. Tests skip when git is not installed.
func GitHTTP(t testing.TB, work string, opts ...GitHTTPOption) GitHTTPServer {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	s := gitHTTPSettings{users: map[string]string{}}
	for _, o := range opts {
		o(&s)
	}
	dir := t.TempDir()
	srv := filepath.Join(dir, "srv")
	Git(t, work, "clone", "-q", "--bare", work, filepath.Join(srv, "repo.git"))
	var h http.Handler = &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + srv, "GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"},
	}
	if len(s.users) > 0 {
		h = basicAuth(s.users, h)
	}
	if s.plain {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		return GitHTTPServer{URL: ts.URL + "/repo.git", root: srv}
	}
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	caFile := filepath.Join(dir, "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(caFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	return GitHTTPServer{URL: ts.URL + "/repo.git", CAFile: caFile, root: srv}
}

// basicAuth answers 401 to requests without one of users' credentials.
func basicAuth(users map[string]string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if want, known := users[u]; !ok || !known || subtle.ConstantTimeCompare([]byte(p), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test-git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
