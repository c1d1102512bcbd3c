package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder"
)

// historyImage is an image of two layers and three history entries, the middle one
// making no layer, as a Dockerfile FROM scratch, ADD, ENV, RUN makes.
func historyImage(t *testing.T) (v1.Image, []v1.Layer) {
	t.Helper()
	var layers []v1.Layer
	img := empty.Image
	for i, h := range []v1.History{
		{CreatedBy: "/bin/sh -c #(nop) ADD file:abc in / ", Created: v1.Time{Time: time.Unix(1700000000, 0)}},
		{CreatedBy: "/bin/sh -c #(nop)  ENV X=1", Created: v1.Time{Time: time.Unix(1700000100, 0)}, EmptyLayer: true},
		{CreatedBy: "/bin/sh -c echo hi > /f", Created: v1.Time{Time: time.Unix(1700000200, 0)}, Comment: "made by a test"},
	} {
		add := mutate.Addendum{History: h}
		if !h.EmptyLayer {
			l, err := random.Layer(int64(300*(i+1)), "application/vnd.docker.image.rootfs.diff.tar.gzip")
			if err != nil {
				t.Fatal(err)
			}
			add.Layer = l
			layers = append(layers, l)
		}
		var err error
		if img, err = mutate.Append(img, add); err != nil {
			t.Fatal(err)
		}
	}
	return img, layers
}

// TestImageHistory checks GET /images/{name}/history against dockerd's answer for an
// image without a parent chain (pulled, loaded or built elsewhere): newest first, the
// image's ID and tags on the newest entry only, each layer's file sizes on the entry
// that made it.
func TestImageHistory(t *testing.T) {
	t.Parallel()
	ts := newImageTestServer(t)
	img, _ := historyImage(t)
	id := ts.put(t, img, "hist:1", "hist:2")
	_, im, err := ts.store.Resolve("hist:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Layers) != 2 || im.Layers[0].Size == 0 || im.Layers[1].Size == 0 {
		t.Fatalf("store layers %+v: want two with sizes", im.Layers)
	}
	want := []historyItem{
		{ID: id.String(), Created: 1700000200, CreatedBy: "/bin/sh -c echo hi > /f", Comment: "made by a test", Size: im.Layers[1].Size, Tags: []string{"hist:1", "hist:2"}},
		{ID: "<missing>", Created: 1700000100, CreatedBy: "/bin/sh -c #(nop)  ENV X=1"},
		{ID: "<missing>", Created: 1700000000, CreatedBy: "/bin/sh -c #(nop) ADD file:abc in / ", Size: im.Layers[0].Size},
	}
	tests := []struct {
		path   string
		status int
		want   []historyItem
		msg    string
	}{
		{path: "/v1.41/images/hist:1/history", status: http.StatusOK, want: want},
		{path: "/images/" + id.Hex[:12] + "/history", status: http.StatusOK, want: want},
		{path: "/v1.41/images/nope/history", status: http.StatusNotFound, msg: "No such image: nope:latest"},
	}
	for _, tt := range tests {
		resp, raw := ts.call(t, http.MethodGet, tt.path, nil, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s: %d %s, want %d", tt.path, resp.StatusCode, raw, tt.status)
			continue
		}
		if tt.msg != "" {
			if !strings.Contains(string(raw), tt.msg) {
				t.Errorf("GET %s: %s, want %q", tt.path, raw, tt.msg)
			}
			continue
		}
		var got []historyItem
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("GET %s (-want +got):\n%s", tt.path, d)
		}
		// dockerd's field names and order; Tags null on older entries.
		if !strings.HasPrefix(string(raw), `[{"Comment":"made by a test","Created":1700000200,"CreatedBy":`) ||
			!strings.Contains(string(raw), `"Id":"<missing>","Size":0,"Tags":null}`) {
			t.Errorf("GET %s: %s: not dockerd's shape", tt.path, raw)
		}
	}
}

// TestSystemDiskUsage checks GET /system/df: images with their shared sizes (a layer
// two images have), layers counted once, no containers or volumes, and the step and
// base caches as build cache.
func TestSystemDiskUsage(t *testing.T) {
	t.Parallel()
	cache, err := builder.NewLocalCache(filepath.Join(t.TempDir(), "steps"))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := random.Layer(700, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	key := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if err := cache.Put(context.Background(), key, &builder.CachedStep{Layer: layer, History: v1.History{CreatedBy: "/bin/sh -c make"}}); err != nil {
		t.Fatal(err)
	}
	baseDir := t.TempDir()
	reg := newTestRegistry(t, "", "")
	base, _ := historyImage(t)
	pushImage(t, base, reg+"/df/base:1")
	if err := builder.Warm(context.Background(), baseDir, &builder.WarmRequest{Images: []string{reg + "/df/base:1"}}); err != nil {
		t.Fatal(err)
	}

	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Workspace: builder.Workspace{Cache: cache, BaseCache: baseDir}}))
	child, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	baseID := ts.put(t, base, "df-base")
	childID := ts.put(t, child)
	_, baseIm, _ := ts.store.Resolve("df-base")
	_, childIm, _ := ts.store.Resolve(childID.String())

	resp, raw := ts.call(t, http.MethodGet, "/v1.41/system/df", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /system/df: %d %s", resp.StatusCode, raw)
	}
	var got systemDF
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	shared := baseIm.Size
	if got.LayersSize != childIm.Size {
		t.Errorf("LayersSize %d, want %d (every layer once)", got.LayersSize, childIm.Size)
	}
	wantImages := map[string][2]int64{ // ID → size, shared size
		baseID.String():  {baseIm.Size, shared},
		childID.String(): {childIm.Size, shared},
	}
	if len(got.Images) != 2 {
		t.Fatalf("images %+v, want 2", got.Images)
	}
	for _, im := range got.Images {
		if w := wantImages[im.ID]; im.Size != w[0] || im.SharedSize != w[1] || im.Containers != 0 {
			t.Errorf("image %s: size %d shared %d containers %d, want %d %d 0", im.ID, im.Size, im.SharedSize, im.Containers, w[0], w[1])
		}
		if im.ID == childID.String() && (len(im.RepoTags) != 1 || im.RepoTags[0] != "<none>:<none>") {
			t.Errorf("dangling image tags %v, want <none>:<none>", im.RepoTags)
		}
	}
	if len(got.Containers) != 0 || len(got.Volumes) != 0 || !strings.Contains(string(raw), `"Containers":[],"Volumes":[]`) {
		t.Errorf("containers/volumes: %s", raw)
	}
	if len(got.BuildCache) != 2 {
		t.Fatalf("build cache %+v, want a step and a base image", got.BuildCache)
	}
	step, bimg := got.BuildCache[0], got.BuildCache[1]
	layerSize, _ := layer.Size()
	if step.ID != key.Hex || step.Type != "regular" || step.Description != "/bin/sh -c make" || step.Size <= layerSize || step.LastUsedAt == nil {
		t.Errorf("step record %+v: want ID %s, regular, its instruction, more than its layer's %d bytes", step, key.Hex, layerSize)
	}
	if bimg.Type != "base-image" || !strings.HasSuffix(bimg.Description, "/df/base:1") || bimg.Size == 0 || bimg.Shared {
		t.Errorf("base record %+v", bimg)
	}
	if got.BuilderSize != step.Size+bimg.Size {
		t.Errorf("BuilderSize %d, want %d", got.BuilderSize, step.Size+bimg.Size)
	}
}

// pushImage pushes img to ref on a test registry.
func pushImage(t *testing.T, img v1.Image, ref string) {
	t.Helper()
	pushImageAuth(t, img, ref, "", "")
}

// pushImageAuth pushes img to ref with basic credentials (none when user is "").
func pushImageAuth(t *testing.T, img v1.Image, ref, user, password string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	auth := authn.Anonymous
	if user != "" {
		auth = &authn.Basic{Username: user, Password: password}
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
}
