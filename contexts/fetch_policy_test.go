package contexts

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/fetchpolicy"
	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/test/testworld"
)

// TestFromGitFetchPolicy clones over http through a server on 127.0.0.2 that
// redirects to the repository on 127.0.0.1. go-git dials the redirect itself, so
// only kiln's installed go-git client can refuse it: allowing 127.0.0.2 alone
// refuses the clone at 127.0.0.1, allowing both clones.
func TestFromGitFetchPolicy(t *testing.T) {
	work, _ := newGitRepo(t, func(string) {})
	repo := testworld.GitHTTP(t, work, testworld.WithPlainHTTP())
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not on this machine's loopback: %v", err)
	}
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, repo.URL[:len(repo.URL)-len("/repo.git")]+r.URL.RequestURI(), http.StatusFound)
	}))
	front.Listener.Close()
	front.Listener = ln
	front.Start()
	defer front.Close()
	via := front.URL + "/repo.git"

	tests := []struct {
		name    string
		url     string
		allow   []string
		refused string // the refused address; "" expects a clone
	}{
		{name: "direct, default", url: repo.URL, refused: "127.0.0.1"},
		{name: "redirect, only the first server allowed", url: via, allow: []string{"127.0.0.2"}, refused: "127.0.0.1"},
		{name: "redirect, both allowed", url: via, allow: []string{"127.0.0.0/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fetchpolicy.New(fetchpolicy.Strict, tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "ctx")
			_, err = FromGit(context.Background(), tt.url, dir, GitOptions{}, WithNetLimits(nettimeout.Limits{}.Guarded(p)))
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("FromGit(%s): %v", tt.url, err)
				}
				return
			}
			var r *fetchpolicy.Refusal
			if !errors.As(err, &r) || r.Addr.String() != tt.refused {
				t.Fatalf("FromGit(%s) = %v, want a refusal of %s", tt.url, err, tt.refused)
			}
		})
	}
}

// TestFromGitDaemonFetchPolicy clones over git:// from localhost: refused by default
// at the first dial, and, with 127.0.0.1 allowed, cloned from the URL pinned to the
// address that dial reached (go-git would otherwise resolve the name again).
func TestFromGitDaemonFetchPolicy(t *testing.T) {
	srv := startGitServer(t, func(string) {})
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort("localhost", u.Port())
	byName := u.String()
	tests := []struct {
		name    string
		allow   []string
		refused bool
	}{
		{name: "default", refused: true},
		{name: "address allowed", allow: []string{"127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fetchpolicy.New(fetchpolicy.Strict, tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "ctx")
			c, err := FromGit(context.Background(), byName, dir, GitOptions{}, WithNetLimits(nettimeout.Limits{}.Guarded(p)))
			if tt.refused {
				var r *fetchpolicy.Refusal
				if !errors.As(err, &r) || r.Rule != "a loopback address" {
					t.Fatalf("FromGit(%s) = %v, want a loopback refusal", byName, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromGit(%s): %v", byName, err)
			}
			if got, err := os.ReadFile(filepath.Join(c.Dir, "version")); err != nil || string(got) != "two\n" {
				t.Errorf("version = %q, %v; want two", got, err)
			}
		})
	}
}

func TestPinGitURL(t *testing.T) {
	t.Parallel()
	reached := &net.TCPAddr{IP: net.ParseIP("93.184.216.34"), Port: 9418}
	tests := []struct{ in, want string }{
		{"git://example.com/repo.git", "git://93.184.216.34:9418/repo.git"},
		{"git://example.com:9418/repo.git", "git://93.184.216.34:9418/repo.git"},
		{"https://example.com/repo.git", "https://example.com/repo.git"}, // TLS needs the name; each dial is guarded
	}
	for _, tt := range tests {
		if got := pinGitURL(tt.in, reached); got != tt.want {
			t.Errorf("pinGitURL(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestS3FetchPolicy: an s3:// context's requests are held to the fetch guard (the
// emulator on 127.0.0.1 is refused unless allowed), while the SDK's credential chain,
// the server's own, is not: its instance-metadata endpoint on 127.0.0.2, which the
// guard refuses, is still asked. Not parallel: the SDK reads the environment.
func TestS3FetchPolicy(t *testing.T) {
	srv := testworld.S3(t)
	srv.SetEnv(t)
	srv.CreateBucket(t, "policy")
	srv.Put(t, "policy", "ctx.tar.gz", s3SuiteTarGz(t))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not on this machine's loopback: %v", err)
	}
	var asked atomic.Int32
	imds := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r) // no role: the chain ends, the download goes unsigned
	}))
	imds.Listener.Close()
	imds.Listener = ln
	imds.Start()
	defer imds.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	tests := []struct {
		name    string
		allow   []string
		refused bool
	}{
		{name: "default", refused: true},
		{name: "emulator allowed", allow: []string{"127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fetchpolicy.New(fetchpolicy.Strict, tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			before := asked.Load()
			_, err = openS3(t, srv, "s3://policy/ctx.tar.gz", true,
				WithArchiveOptions(WithNetLimits(nettimeout.Limits{}.Guarded(p))))
			if asked.Load() == before {
				t.Errorf("the credential chain did not reach the instance metadata endpoint on 127.0.0.2")
			}
			if !tt.refused {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			var r *fetchpolicy.Refusal
			if !errors.As(err, &r) || r.Addr.String() != "127.0.0.1" {
				t.Fatalf("Open = %v, want a refusal of 127.0.0.1", err)
			}
		})
	}
}
