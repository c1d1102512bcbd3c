package builder_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/test/testworld"
)

// flakyLayers is an in-process registry whose layer blobs are cut off halfway, with
// the full Content-Length announced, the first `failures` times they are fetched: the
// connection drops mid-download, which go-containerregistry's own retries (of
// requests, not of bodies) do not cover.
type flakyLayers struct {
	base     string
	layer    string // "/blobs/sha256:..." of the base's layer
	failures atomic.Int32
	cut      atomic.Int32 // how many downloads were cut
}

func newFlakyLayers(t *testing.T) *flakyLayers {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("builds need root (chroot isolation)")
	}
	f := &flakyLayers{}
	_, f.base = testworld.BusyboxRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method != http.MethodGet || f.layer == "" || !strings.HasSuffix(req.URL.Path, f.layer) || f.failures.Add(-1) < 0 {
				next.ServeHTTP(w, req)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Code)
			w.Write(body[:len(body)/2])
			f.cut.Add(1)
		})
	}, testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n"})
	ref, err := name.ParseReference(f.base)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("base layers: %v, %v", layers, err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	f.layer = "/blobs/" + d.String()
	return f
}

func TestExtractRetriesRetryLayerDownloads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		baseCache bool
		failures  int32
		retries   int
		wantErr   bool
		wantCut   int32
	}{
		{name: "no retries: a cut download fails the build", failures: 1, retries: 0, wantErr: true, wantCut: 1},
		{name: "one retry survives one cut download", failures: 1, retries: 1, wantCut: 1},
		{name: "into the base cache, one retry survives one cut download", baseCache: true, failures: 1, retries: 1, wantCut: 1},
		{name: "two cut downloads exhaust one retry", failures: 2, retries: 1, wantErr: true, wantCut: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newFlakyLayers(t)
			reg.failures.Store(tt.failures)
			bctx, err := contexts.FromDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}
			if tt.baseCache {
				ws.BaseCache = t.TempDir()
			}
			var warned bytes.Buffer
			_, err = builder.Build(context.Background(), &builder.Request{
				Dockerfile:     []byte("FROM " + reg.base + "\nRUN test -x /bin/busybox\n"),
				Context:        bctx,
				ExtractRetries: tt.retries,
			},
				builder.WithWorkspace(ws),
				builder.WithEvents(func(e builder.Event) {
					if w, ok := e.(builder.Warning); ok {
						warned.WriteString(w.Message + "\n")
					}
				}),
			)
			if tt.wantErr != (err != nil) {
				t.Fatalf("Build: err = %v, want an error: %v", err, tt.wantErr)
			}
			if got := reg.cut.Load(); got != tt.wantCut {
				t.Errorf("%d downloads were cut, want %d", got, tt.wantCut)
			}
			if tt.retries > 0 && !strings.Contains(warned.String(), "retrying") {
				t.Errorf("no warning says the download is retried; warnings:\n%s", warned.String())
			}
		})
	}
}
