package output_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder/output"
)

func TestOCIMediaTypes(t *testing.T) {
	t.Parallel()
	docker, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	docker = mutate.MediaType(docker, types.DockerManifestSchema2)
	oci := mutate.MediaType(docker, types.OCIManifestSchema1)
	tests := []struct {
		name    string
		mt      types.MediaType
		changed bool
	}{
		{name: "docker", mt: types.DockerManifestSchema2, changed: true},
		{name: "oci", mt: types.OCIManifestSchema1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := docker
			if tt.mt == types.OCIManifestSchema1 {
				in = oci
			}
			got, err := output.OCIMediaTypes(in)
			if err != nil {
				t.Fatal(err)
			}
			if mt, _ := got.MediaType(); mt != types.OCIManifestSchema1 {
				t.Errorf("media type %s", mt)
			}
			inDigest, _ := in.Digest()
			gotDigest, _ := got.Digest()
			if (inDigest != gotDigest) != tt.changed {
				t.Errorf("digest %s -> %s, changed want %v", inDigest, gotDigest, tt.changed)
			}
			raw, _ := got.RawManifest()
			if want := fmt.Sprintf("%x", sha256.Sum256(raw)); gotDigest.Hex != want {
				t.Errorf("digest %s is not the manifest's %s", gotDigest.Hex, want)
			}
			m, _ := got.Manifest()
			if m.Config.MediaType != types.OCIConfigJSON && tt.changed {
				t.Errorf("config media type %s", m.Config.MediaType)
			}
			for _, l := range m.Layers {
				if tt.changed && l.MediaType != types.OCILayer {
					t.Errorf("layer media type %s", l.MediaType)
				}
			}
			if a, b := mustConfigName(t, in), mustConfigName(t, got); a != b {
				t.Errorf("config %s -> %s: the image ID changed", a, b)
			}
			// Written into a layout and read back, it is a valid image.
			var buf bytes.Buffer
			if err := output.WriteArchive(&buf, got, output.ArchiveOCI, nil, time.Now()); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			untar(t, buf.Bytes(), dir)
			idx, err := layout.ImageIndexFromPath(filepath.Join(dir))
			if err != nil {
				t.Fatal(err)
			}
			back, err := idx.Image(gotDigest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(back); err != nil {
				t.Errorf("does not validate: %v", err)
			}
		})
	}
}

func mustConfigName(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
