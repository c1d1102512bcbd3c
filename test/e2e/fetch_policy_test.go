package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestServerFetchPolicy: kiln serve refuses, by default, to fetch a remote= context
// or an ADD URL from loopback (what a request would use to reach cloud metadata or
// an internal service), with a message naming the rule and the flag; the same
// requests succeed once --fetch-allow names the address.
func TestServerFetchPolicy(t *testing.T) {
	reg := testworld.Registry(t)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/Dockerfile":
			_, _ = w.Write([]byte("FROM " + reg + "/busybox:1.35\nRUN echo remote-dockerfile\n"))
		default:
			_, _ = w.Write([]byte("payload\n"))
		}
	}))
	defer files.Close()
	addCtx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + "/busybox:1.35\nADD " + files.URL + "/payload.txt /payload.txt\nRUN cat /payload.txt\n",
	})
	post := func(s *server, q url.Values, body string) string {
		t.Helper()
		args := []string{"-sS", "--unix-socket", s.socket, "-X", "POST", "-H", "Content-Type: application/x-tar"}
		if body != "" {
			args = append(args, "--data-binary", "@"+body)
		}
		out, err := exec.Command("curl", append(args, "http://localhost/build?"+q.Encode())...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		return string(out)
	}
	tarOf := func(dir string) string {
		t.Helper()
		f := t.TempDir() + "/ctx.tar"
		run(t, "tar", "-C", dir, "-cf", f, ".")
		return f
	}
	addTar := tarOf(addCtx)
	remote := url.Values{"remote": {files.URL + "/Dockerfile"}, "t": {"kiln-e2e/fetch-policy:" + uniqueTag()}}
	add := url.Values{"t": {"kiln-e2e/fetch-policy-add:" + uniqueTag()}}

	strict := startServer(t)
	for _, c := range []struct {
		name, out string
	}{
		{"remote=", post(strict, remote, "")},
		{"ADD URL", post(strict, add, addTar)},
	} {
		for _, want := range []string{"127.0.0.1 is a loopback address", "refused by the fetch policy", "--fetch-allow 127.0.0.1"} {
			if !strings.Contains(c.out, want) {
				t.Errorf("%s from loopback through a default server: the answer does not say %q:\n%s", c.name, want, c.out)
			}
		}
		if strings.Contains(c.out, "Successfully built") {
			t.Errorf("%s from loopback built with the default policy:\n%s", c.name, c.out)
		}
	}
	if out := post(strict, add, addTar); !strings.Contains(out, "ADD "+files.URL) {
		t.Errorf("the ADD refusal does not name the instruction:\n%s", out)
	}

	allowing := startServer(t, "--fetch-allow", "127.0.0.1")
	if out := post(allowing, remote, ""); !strings.Contains(out, "remote-dockerfile") || !strings.Contains(out, "Successfully built") {
		t.Errorf("remote= with --fetch-allow 127.0.0.1 did not build:\n%s", out)
	}
	if out := post(allowing, add, addTar); !strings.Contains(out, "payload") || !strings.Contains(out, "Successfully built") {
		t.Errorf("ADD URL with --fetch-allow 127.0.0.1 did not build:\n%s", out)
	}
}

// TestBuildxFetchPolicy: the BuildKit door holds ADD URLs to the same policy as
// /build, since both run the same engine with the server's workspace.
func TestBuildxFetchPolicy(t *testing.T) {
	reg := testworld.Registry(t)
	cfg := testworld.Buildx(t)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("payload\n"))
	}))
	defer files.Close()
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + "/busybox:1.35\nADD " + files.URL + "/payload.txt /payload.txt\nRUN cat /payload.txt\n",
	})
	s := startServer(t, "--insecure-registry", reg)
	out, code := s.buildx(t, cfg, "", "build", "--progress=plain", ctx)
	if code == 0 || !strings.Contains(out, "127.0.0.1 is a loopback address") || !strings.Contains(out, "--fetch-allow 127.0.0.1") {
		t.Errorf("ADD from loopback through the BuildKit door with the default policy: exit %d\n%s", code, out)
	}
	allowing := startServer(t, "--insecure-registry", reg, "--fetch-allow", "127.0.0.1")
	if out, code := allowing.buildx(t, cfg, "", "build", "--progress=plain", ctx); code != 0 || !strings.Contains(out, "payload") {
		t.Errorf("ADD from loopback with --fetch-allow 127.0.0.1: exit %d\n%s", code, out)
	}
}
