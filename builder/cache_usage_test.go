package builder_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder"
)

// TestLocalCacheUsage checks that docker system df's build cache adds up to the disk
// used: a layer two steps share is counted in the first only, the second is Shared.
func TestLocalCacheUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := builder.NewLocalCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	layer, err := random.Layer(500, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	layerSize, _ := layer.Size()
	keys := []v1.Hash{
		{Algorithm: "sha256", Hex: strings.Repeat("1", 64)},
		{Algorithm: "sha256", Hex: strings.Repeat("2", 64)},
		{Algorithm: "sha256", Hex: strings.Repeat("3", 64)},
	}
	steps := []*builder.CachedStep{
		{Layer: layer, History: v1.History{CreatedBy: "RUN a"}},
		{Layer: layer, History: v1.History{CreatedBy: "RUN b"}},
		{History: v1.History{CreatedBy: "ENV c", EmptyLayer: true}},
	}
	for i, s := range steps {
		if err := c.Put(ctx, keys[i], s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Usage = %+v, want 3 records", got)
	}
	for i, want := range []struct {
		desc      string
		withLayer bool
		shared    bool
	}{{"RUN a", true, false}, {"RUN b", false, true}, {"ENV c", false, false}} {
		r := got[i]
		if r.ID != keys[i].Hex || r.Type != "regular" || r.Description != want.desc || r.Shared != want.shared ||
			(r.Size > layerSize) != want.withLayer || r.CreatedAt.IsZero() || r.LastUsedAt.IsZero() {
			t.Errorf("record %d = %+v, want %s, layer counted %v, shared %v", i, r, want.desc, want.withLayer, want.shared)
		}
	}
	if recs, err := builder.BaseCacheUsage(filepath.Join(t.TempDir(), "none")); err != nil || recs != nil {
		t.Errorf("BaseCacheUsage(missing dir) = %v, %v; want an empty cache", recs, err)
	}
}

// TestPullThroughMirror checks that builder.Pull goes through the FROM puller's
// registry settings: with a mirror for a registry that does not answer, the image
// comes from the mirror and keeps the reference asked for; CacheBaseImage then puts it
// in the base cache under that reference.
func TestPullThroughMirror(t *testing.T) {
	t.Parallel()
	mirror := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(mirror.Close)
	mirrorHost := strings.TrimPrefix(mirror.URL, "http://")
	img, err := random.Image(200, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(mirrorHost + "/lib/app:1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1 of loopback.
	const gone = "127.0.0.1:1"
	cacheDir := t.TempDir()
	pulled, err := builder.Pull(context.Background(), gone+"/lib/app:1", "linux/amd64",
		builder.WithRegistry(builder.Registry{Mirrors: func(reg string) []string {
			if reg == gone {
				return []string{mirrorHost}
			}
			return nil
		}, SkipDefaultFallback: true}))
	if err != nil {
		t.Fatalf("Pull through the mirror: %v", err)
	}
	wantDigest, _ := img.Digest()
	gotID, _ := pulled.Image.ConfigName()
	wantID, _ := img.ConfigName()
	if pulled.Ref.String() != gone+"/lib/app:1" || pulled.Digest != wantDigest || gotID != wantID {
		t.Errorf("pulled %s %s (ID %s), want %s/lib/app:1 %s (ID %s)", pulled.Ref, pulled.Digest, gotID, gone, wantDigest, wantID)
	}
	if raw, err := pulled.Image.RawManifest(); err != nil {
		t.Error(err)
	} else if d, _ := img.RawManifest(); string(raw) != string(d) {
		t.Error("the pulled manifest is not the registry's bytes")
	}
	if err := builder.CacheBaseImage(context.Background(), cacheDir, pulled.Image, pulled.Ref); err != nil {
		t.Fatal(err)
	}
	recs, err := builder.BaseCacheUsage(cacheDir)
	if err != nil || len(recs) != 1 || recs[0].Description != gone+"/lib/app:1" || recs[0].Size == 0 {
		t.Errorf("base cache after Pull: %+v, %v; want the image under the reference asked for", recs, err)
	}
}
