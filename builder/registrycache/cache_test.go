package registrycache_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/registrycache"
	"github.com/kiln-build/kiln/snapshot"
)

// newRegistry starts an in-process registry behind wrap (nil for none) and returns
// the cache repository in it.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) name.Repository {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/app/cache")
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func key(s string) v1.Hash {
	sum := sha256.Sum256([]byte(s))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func runStep(t *testing.T, layer v1.Layer) *builder.CachedStep {
	t.Helper()
	return &builder.CachedStep{
		Layer: layer,
		History: v1.History{
			Created:    v1.Time{Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
			CreatedBy:  "/bin/sh -c make",
			EmptyLayer: layer == nil,
		},
		Config: v1.Config{Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/src", User: "app",
			Volumes: map[string]struct{}{"/data": {}}, Labels: map[string]string{"x": "y"}},
	}
}

func randomLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fileLayer writes a gzip layer blob to a file and returns it as the builder's layers are.
func fileLayer(t *testing.T, mt types.MediaType) *snapshot.Layer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := strings.Repeat("made by a step\n", 20)
	tw.WriteHeader(&tar.Header{Name: "made", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	io.WriteString(tw, body)
	tw.Close()
	raw := tb.Bytes()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _, _ := v1.SHA256(bytes.NewReader(gz.Bytes()))
	diffID, _, _ := v1.SHA256(bytes.NewReader(raw))
	return snapshot.LayerFromFile(path, d, diffID, int64(gz.Len()), mt)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		layer  func(t *testing.T) v1.Layer
		wantMT types.MediaType // the entry's manifest media type
	}{
		{name: "layer", layer: randomLayer, wantMT: types.DockerManifestSchema2},
		{name: "layer file", layer: func(t *testing.T) v1.Layer { return fileLayer(t, types.DockerLayer) }, wantMT: types.DockerManifestSchema2},
		{name: "no layer", layer: func(*testing.T) v1.Layer { return nil }, wantMT: types.DockerManifestSchema2},
		{name: "oci layer", layer: func(t *testing.T) v1.Layer {
			l, err := random.Layer(256, types.OCILayerZStd)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}, wantMT: types.OCIManifestSchema1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			repo := newRegistry(t, nil)
			c := registrycache.New(repo, registrycache.WithSpoolDir(t.TempDir()))
			k := key(tt.name)
			step := runStep(t, tt.layer(t))
			if err := c.Put(ctx, k, step); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}

			// The entry is an image at <repo>:<key hex>, kaniko's scheme.
			img, err := remote.Image(repo.Tag(k.Hex))
			if err != nil {
				t.Fatalf("no cache image under kaniko's tag: %v", err)
			}
			if err := validate.Image(img); err != nil {
				t.Errorf("invalid cache image: %v", err)
			}
			if mt, _ := img.MediaType(); mt != tt.wantMT {
				t.Errorf("manifest media type %s, want %s", mt, tt.wantMT)
			}

			got, err := registrycache.New(repo).Get(ctx, k)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			opts := cmp.Comparer(func(a, b v1.Time) bool { return a.Equal(b.Time) })
			if diff := cmp.Diff(step.History, got.History, opts); diff != "" {
				t.Errorf("history (-put +got):\n%s", diff)
			}
			if diff := cmp.Diff(step.Config, got.Config); diff != "" {
				t.Errorf("config (-put +got):\n%s", diff)
			}
			if (got.Layer == nil) != (step.Layer == nil) {
				t.Fatalf("layer = %v, want %v", got.Layer, step.Layer)
			}
			if step.Layer != nil {
				for _, f := range []func(v1.Layer) (v1.Hash, error){v1.Layer.Digest, v1.Layer.DiffID} {
					want, _ := f(step.Layer)
					if have, err := f(got.Layer); err != nil || have != want {
						t.Errorf("layer hash %s (%v), want %s", have, err, want)
					}
				}
				if err := validate.Layer(got.Layer); err != nil {
					t.Errorf("the cached layer does not download intact: %v", err)
				}
			}
		})
	}
}

func TestGetMisses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := newRegistry(t, nil)
	now := time.Now()
	clock := func() time.Time { return now }
	c := registrycache.New(repo, registrycache.WithClock(clock))
	stored := key("stored")
	if err := c.Put(ctx, stored, runStep(t, randomLayer(t))); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Not a kiln entry: two layers under a key's tag.
	alien := key("alien")
	img, _ := random.Image(64, 2)
	if err := remote.Write(repo.Tag(alien.Hex), img); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		key      v1.Hash
		ttl      time.Duration
		later    time.Duration
		wantMiss bool
		wantErr  string
	}{
		{name: "hit", key: stored},
		{name: "within the TTL", key: stored, ttl: time.Hour, later: 59 * time.Minute},
		{name: "no TTL never expires", key: stored, later: 1000 * time.Hour},
		{name: "no entry", key: key("absent"), wantMiss: true},
		{name: "expired", key: stored, ttl: time.Hour, later: 61 * time.Minute, wantMiss: true, wantErr: "longer than the cache TTL"},
		{name: "not a kiln entry", key: alien, wantErr: "not a kiln cache entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := registrycache.New(repo, registrycache.WithTTL(tt.ttl),
				registrycache.WithClock(func() time.Time { return now.Add(tt.later) }))
			_, err := c.Get(ctx, tt.key)
			if miss := errors.Is(err, builder.ErrCacheMiss); miss != tt.wantMiss {
				t.Errorf("Get: err = %v, miss = %v, want %v", err, miss, tt.wantMiss)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Get: err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantErr == "" && !tt.wantMiss && err != nil {
				t.Errorf("Get: %v", err)
			}
		})
	}
}

// refuseWrites answers 403 to every write to the cache repository, as a registry
// whose credentials may pull but not push does.
func refuseWrites(writes *atomic.Int32) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead && strings.Contains(r.URL.Path, "/cache/") {
				writes.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"read-only"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestRefusedPushesAreReportedNotReturned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var writes atomic.Int32
	repo := newRegistry(t, refuseWrites(&writes))
	c := registrycache.New(repo, registrycache.WithUploads(1, 1))
	for i := range 4 {
		if err := c.Put(ctx, key(string(rune('a'+i))), runStep(t, randomLayer(t))); err != nil {
			t.Fatalf("Put %d returned %v: a cache push must never fail the step", i, err)
		}
	}
	err := c.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "4 of 4 cache pushes") || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("Flush = %v, want all four pushes reported with the registry's reason", err)
	}
	// After the first refusal the others are not tried: one queued behind it may have
	// started, no more.
	if n := writes.Load(); n > 2 {
		t.Errorf("%d refused writes, want the pushes to stop after the first refusal", n)
	}
	// Reported once: a second Flush has nothing new.
	if err := c.Flush(ctx); err != nil {
		t.Errorf("second Flush = %v, want nil", err)
	}
	// After a Flush (a server's next build), a store is tried again.
	before := writes.Load()
	if err := c.Put(ctx, key("after flush"), runStep(t, randomLayer(t))); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err == nil || writes.Load() == before {
		t.Errorf("a store after Flush: Flush = %v, %d writes tried, want it tried and refused again", err, writes.Load()-before)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var writes atomic.Int32
	repo := newRegistry(t, refuseWrites(&writes))
	c := registrycache.New(repo, registrycache.WithReadOnly())
	if err := c.Put(ctx, key("x"), runStep(t, randomLayer(t))); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("a read-only cache wrote %d times", n)
	}
}

// TestPutDoesNotWait holds every upload until the test lets go: Put must return, Get
// must serve the step meanwhile, and Flush must wait for the push.
func TestPutDoesNotWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gate := make(chan struct{})
	repo := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				<-gate
			}
			next.ServeHTTP(w, r)
		})
	})
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the server closes, which waits for handlers
	layer := fileLayer(t, types.DockerLayer)
	c := registrycache.New(repo, registrycache.WithSpoolDir(t.TempDir()))
	k := key("slow")
	put := make(chan error, 1)
	go func() { put <- c.Put(ctx, k, runStep(t, layer)) }()
	select {
	case err := <-put:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Put waited for the upload")
	}
	// The build removes its blob: the spooled link keeps the push going.
	if err := os.Remove(layer.Path()); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, k); err != nil || got.Layer == nil {
		t.Errorf("Get of a step being pushed = %v, %v; want the step", got, err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(ctx) }()
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned (%v) before the push ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got, err := registrycache.New(repo).Get(ctx, k)
	if err != nil {
		t.Fatalf("Get after the push: %v", err)
	}
	if err := validate.Layer(got.Layer); err != nil {
		t.Errorf("the pushed layer: %v", err)
	}
}

func TestFlushGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	repo := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				<-gate
			}
			next.ServeHTTP(w, r)
		})
	})
	t.Cleanup(func() { close(gate) }) // before the server closes, which waits for handlers
	c := registrycache.New(repo)
	if err := c.Put(context.Background(), key("stuck"), runStep(t, nil)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush = %v, want the deadline", err)
	}
}
