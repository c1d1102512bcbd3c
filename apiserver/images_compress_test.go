package apiserver

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// plainImage is an image as a build leaves it in the store: its layers plain tars.
func plainImage(t *testing.T) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	for _, content := range []string{"one", "two"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: content, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		var err error
		img, err = mutate.AppendLayers(img, static.NewLayer(buf.Bytes(), types.DockerUncompressedLayer))
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// The store keeps a built image's plain layers; docker push and docker save send
// them gzipped, as they always did, compressing once (the second push takes the
// memo's blobs: the registry has them already and the digest is the same).
func TestPushAndSaveCompressPlainLayers(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, "", "")
	state := t.TempDir()
	ts := newImageTestServer(t, WithStateDir(state))
	repo := reg + "/apicap/plain"
	ts.put(t, plainImage(t), repo+":1")

	var digests []v1.Hash
	for range 2 {
		resp, body := ts.call(t, http.MethodPost, "/v1.41/images/"+repo+"/push?tag=1", nil, http.Header{"X-Registry-Auth": {"e30="}})
		if resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, body)
		}
		ref, err := name.ParseReference(repo + ":1")
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("the registry lacks the image: %v (%s)", err, body)
		}
		// validate reads every layer as gzip and checks digests, sizes and diff IDs.
		if err := validate.Image(got); err != nil {
			t.Errorf("pushed image: %v", err)
		}
		m, _ := got.Manifest()
		for i, l := range m.Layers {
			if l.MediaType != types.DockerLayer {
				t.Errorf("pushed layer %d is %s, want %s", i, l.MediaType, types.DockerLayer)
			}
		}
		d, _ := got.Digest()
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two pushes gave %s and %s", digests[0], digests[1])
	}
	records, _ := filepath.Glob(filepath.Join(state, "cache", "build", "compressed", "*.json"))
	if len(records) != 2 {
		t.Errorf("memo records %q, want one per layer", records)
	}

	resp, archive := ts.call(t, http.MethodGet, "/v1.41/images/get?names="+repo+"%3A1", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	saved, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(archive)), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(saved); err != nil {
		t.Errorf("saved image: %v", err)
	}
	if d, _ := saved.Digest(); d != digests[0] {
		t.Errorf("saved image's manifest %s, pushed %s", d, digests[0])
	}
}
