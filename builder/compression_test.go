package builder_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// TestCompression builds with each layer compression, pushes the image to the test
// registry and reads it back with go-containerregistry: zstd layers make an OCI
// image whose base layers keep their bytes under OCI media types; gzip stays
// Docker's schema 2.
func TestCompression(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		compression  snapshot.Compression
		level        int
		manifest     types.MediaType
		base, layers types.MediaType
	}{
		{snapshot.Gzip, 0, types.DockerManifestSchema2, types.DockerLayer, types.DockerLayer},
		{snapshot.Zstd, 0, types.OCIManifestSchema1, types.OCILayer, types.OCILayerZStd},
		{snapshot.Zstd, 19, types.OCIManifestSchema1, types.OCILayer, types.OCILayerZStd},
	}
	for _, tt := range tests {
		t.Run(sprintf("%s-%d", tt.compression, tt.level), func(t *testing.T) {
			ctxDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, "a"), []byte("copied"), 0o644); err != nil {
				t.Fatal(err)
			}
			bctx, err := contexts.FromDir(ctxDir)
			if err != nil {
				t.Fatal(err)
			}
			res, err := builder.Build(context.Background(), &builder.Request{
				Dockerfile:       []byte("FROM " + w.busybox + "\nCOPY a /a\nRUN echo ran > /ran\n"),
				Context:          bctx,
				Compression:      tt.compression,
				CompressionLevel: tt.level,
			}, builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}))
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			ref, err := name.ParseReference(w.registry+"/compression:"+tt.compression.String(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, res.Image); err != nil {
				t.Fatalf("push: %v", err)
			}
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if tt.compression == snapshot.Gzip {
				// validate reads layers as gzip only; zstd ones are checked by diffID below.
				if err := validate.Image(img); err != nil {
					t.Errorf("image read back is invalid: %v", err)
				}
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tt.manifest {
				t.Errorf("manifest media type %s, want %s", m.MediaType, tt.manifest)
			}
			if len(m.Layers) != 3 {
				t.Fatalf("%d layers, want the base's and two", len(m.Layers))
			}
			for i, l := range m.Layers {
				want := tt.layers
				if i == 0 {
					want = tt.base
				}
				if l.MediaType != want {
					t.Errorf("layer %d media type %s, want %s", i, l.MediaType, want)
				}
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range layers {
				if got := diffID(t, l); got != cf.RootFS.DiffIDs[i] {
					t.Errorf("layer %d decompresses to %s, want diffID %s", i, got, cf.RootFS.DiffIDs[i])
				}
			}
			for i, want := range map[int]string{1: "copied", 2: "ran\n"} {
				if got := layerFile(t, layers[i]); got != want {
					t.Errorf("layer %d holds %q, want %q", i, got, want)
				}
			}
		})
	}
}

// diffID hashes a layer's uncompressed content, as read from its blob.
func diffID(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h, _, err := v1.SHA256(rc)
	if err != nil {
		t.Fatalf("reading layer: %v", err)
	}
	return h
}

// layerFile returns the content of the one regular file of a layer.
func layerFile(t *testing.T, l v1.Layer) string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	var content string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files, content = append(files, h.Name), string(b)
		}
	}
	if len(files) != 1 {
		t.Fatalf("layer holds files %s, want one", strings.Join(files, ", "))
	}
	return content
}
