package contexts_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/contexts"
)

func TestFromURL(t *testing.T) {
	t.Parallel()
	var zst bytes.Buffer
	zw, _ := zstd.NewWriter(&zst)
	zw.Write(tarball(t, true, file("Dockerfile", "FROM a\n"), file("b", "c")))
	zw.Close()
	files := map[string][]byte{
		"/ctx.tar":          tarball(t, true, file("Dockerfile", "FROM x\n"), file("f", "1")),
		"/ctx.tar.zst":      zst.Bytes(),
		"/plain.Dockerfile": []byte("FROM y\nRUN true\n"),
		"/big":              bytes.Repeat([]byte("#"), 4096),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		url     string
		opts    []contexts.ArchiveOption
		want    map[string]string
		wantErr string
	}{
		{name: "tar", url: srv.URL + "/ctx.tar", want: map[string]string{"Dockerfile": "f 0644 FROM x\n", "f": "f 0644 1"}},
		{name: "compressed tar", url: srv.URL + "/ctx.tar.zst", want: map[string]string{"Dockerfile": "f 0644 FROM a\n", "b": "f 0644 c"}},
		{name: "plain Dockerfile", url: srv.URL + "/plain.Dockerfile", want: map[string]string{"Dockerfile": "f 0644 FROM y\nRUN true\n"}},
		{name: "plain Dockerfile under the requested name", url: srv.URL + "/plain.Dockerfile",
			opts: []contexts.ArchiveOption{contexts.WithDockerfileName("build.df")},
			want: map[string]string{"build.df": "f 0644 FROM y\nRUN true\n"}},
		{name: "not found", url: srv.URL + "/nothere", wantErr: "with status 404 Not Found"},
		{name: "too large", url: srv.URL + "/big", opts: []contexts.ArchiveOption{contexts.WithMaxBytes(1000)}, wantErr: "build context too large"},
		{name: "not http", url: "ftp://127.0.0.1/x", wantErr: "not an http(s) URL"},
		{name: "password redacted", url: "http://user:hunter2@" + strings.TrimPrefix(srv.URL, "http://") + "/nothere", wantErr: "user:xxxxx@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ctx")
			_, err := contexts.FromURL(context.Background(), tt.url, dir, tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if tt.name == "too large" && !errors.Is(err, contexts.ErrLimitExceeded) {
					t.Errorf("error %v is not ErrLimitExceeded", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, listing(t, dir)); diff != "" {
				t.Errorf("context (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsGitURL(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"git://example.com/repo":                 true,
		"git@github.com:kiln-build/kiln.git":     true,
		"github.com/kiln-build/kiln":             true,
		"https://example.com/repo.git":           true,
		"https://example.com/repo.git#main:dir":  true,
		"https://example.com/ctx.tar.gz":         false,
		"https://example.com/repo.github.io/ctx": false,
		"http://example.com/Dockerfile":          false,
	} {
		if got := contexts.IsGitURL(s); got != want {
			t.Errorf("IsGitURL(%q) = %v, want %v", s, got, want)
		}
	}
}
