package apiserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestReadContextGitHTTP clones remote= repositories from the real `git
// http-backend`: over plain HTTP, and over TLS with a certificate the server does not
// trust, which must fail with a clear error rather than be accepted, and larger than
// the context size limit.
func TestReadContextGitHTTP(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "zeros"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	testworld.Git(t, work, "init", "-q", "-b", "main")
	testworld.Git(t, work, "add", "-A")
	testworld.Git(t, work, "commit", "-q", "-m", "one")
	plain := testworld.GitHTTP(t, work, testworld.WithPlainHTTP())
	tlsSrv := testworld.GitHTTP(t, work)

	tests := []struct {
		name       string
		remote     string
		cfg        BuildConfig
		wantStatus int // 0: success
		wantMsg    string
	}{
		{name: "http", remote: plain.URL + "#main"},
		{name: "untrusted https", remote: tlsSrv.URL, wantStatus: http.StatusInternalServerError, wantMsg: "certificate"},
		// The clone obeys the context size limit, as an uploaded tar does.
		{name: "too large", remote: plain.URL, cfg: BuildConfig{MaxContextBytes: 512 << 10}, wantStatus: http.StatusRequestEntityTooLarge, wantMsg: "build context too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("POST", "/build", strings.NewReader(""))
			c, aerr := readContext(context.Background(), req, &buildOptions{remote: tt.remote}, filepath.Join(t.TempDir(), "ctx"), "", tt.cfg)
			if tt.wantStatus != 0 {
				if aerr == nil || aerr.status != tt.wantStatus || !strings.Contains(aerr.msg, tt.wantMsg) {
					t.Fatalf("readContext = %+v, want HTTP %d with %q", aerr, tt.wantStatus, tt.wantMsg)
				}
				return
			}
			if aerr != nil {
				t.Fatalf("readContext: HTTP %d %s", aerr.status, aerr.msg)
			}
			if data, _, aerr := readDockerfile(c, ""); aerr != nil || string(data) != "FROM scratch\n" {
				t.Errorf("Dockerfile = %q, %v", data, aerr)
			}
		})
	}
}
