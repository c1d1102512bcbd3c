package output_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/kiln-build/kiln/builder/output"
)

// plainLayer is a layer as a build writes it: a plain tar, its digest its diff ID.
type plainLayer struct{ data []byte }

func newPlainLayer(t *testing.T, files map[string]string) *plainLayer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range []string{"a", "b", "c"} {
		if body, ok := files[n]; ok {
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &plainLayer{data: buf.Bytes()}
}

func (l *plainLayer) hash() v1.Hash {
	sum := sha256.Sum256(l.data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
func (l *plainLayer) Digest() (v1.Hash, error)            { return l.hash(), nil }
func (l *plainLayer) DiffID() (v1.Hash, error)            { return l.hash(), nil }
func (l *plainLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *plainLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }
func (l *plainLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l *plainLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}

// builtImage is a Docker image of a gzip base layer and two plain layers as a build
// leaves them (the builder names them by Docker's plain-tar type).
func builtImage(t *testing.T) (v1.Image, v1.Layer) {
	t.Helper()
	base, err := random.Layer(2048, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base},
		mutate.Addendum{Layer: newPlainLayer(t, map[string]string{"a": "one"}), MediaType: types.DockerUncompressedLayer},
		mutate.Addendum{Layer: newPlainLayer(t, map[string]string{"b": "two", "c": "three"}), MediaType: types.DockerUncompressedLayer},
	)
	if err != nil {
		t.Fatal(err)
	}
	return img, base
}

// checkBlobs checks that each layer's blob hashes to its manifest digest and size,
// is compressed as its media type says (unless guessedTypes: a docker-archive keeps
// no media types), and decompresses to its config diff ID.
func checkBlobs(t *testing.T, img v1.Image, guessedTypes bool) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		blob, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(blob)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest.String() || int64(len(blob)) != d.Size {
			t.Errorf("layer %d: blob %s (%d bytes), manifest %s (%d bytes)", i, got, len(blob), d.Digest, d.Size)
		}
		mt := d.MediaType
		if guessedTypes {
			switch {
			case bytes.HasPrefix(blob, []byte{0x1f, 0x8b}):
				mt = types.DockerLayer
			case bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}):
				mt = types.OCILayerZStd
			default:
				mt = types.DockerUncompressedLayer
			}
		}
		var tr io.Reader
		switch mt {
		case types.DockerLayer, types.OCILayer:
			zr, err := pgzip.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("layer %d (%s) is not gzip: %v", i, d.MediaType, err)
			}
			tr = zr
		case types.OCILayerZStd:
			zr, err := zstd.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("layer %d (%s) is not zstd: %v", i, d.MediaType, err)
			}
			defer zr.Close()
			tr = zr
		default:
			tr = bytes.NewReader(blob)
		}
		h, _, err := v1.SHA256(tr)
		if err != nil {
			t.Fatalf("layer %d (%s): %v", i, d.MediaType, err)
		}
		if h != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d decompresses to %s, config diff ID %s", i, h, cf.RootFS.DiffIDs[i])
		}
	}
}

func TestCompressImage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind     output.Compression
		level    int
		manifest types.MediaType
		base     types.MediaType
		built    types.MediaType
	}{
		{output.Gzip, 0, types.DockerManifestSchema2, types.DockerLayer, types.DockerLayer},
		{output.Gzip, 1, types.DockerManifestSchema2, types.DockerLayer, types.DockerLayer},
		{output.Zstd, 0, types.OCIManifestSchema1, types.OCILayer, types.OCILayerZStd},
		{output.Uncompressed, 0, types.DockerManifestSchema2, types.DockerLayer, types.DockerUncompressedLayer},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d", tt.kind, tt.level), func(t *testing.T) {
			t.Parallel()
			img, base := builtImage(t)
			c, err := output.NewCompressor(t.TempDir(), tt.kind, tt.level)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.CompressImage(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			m, err := out.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tt.manifest {
				t.Errorf("manifest %s, want %s", m.MediaType, tt.manifest)
			}
			want := []types.MediaType{tt.base, tt.built, tt.built}
			for i, d := range m.Layers {
				if d.MediaType != want[i] {
					t.Errorf("layer %d: %s, want %s", i, d.MediaType, want[i])
				}
			}
			bd, _ := base.Digest()
			if m.Layers[0].Digest != bd {
				t.Errorf("base layer %s became %s: it was recompressed", bd, m.Layers[0].Digest)
			}
			id, _ := img.ConfigName()
			if got, _ := out.ConfigName(); got != id {
				t.Errorf("config %s, was %s: the image ID changed", got, id)
			}
			checkBlobs(t, out, false)
			if tt.kind == output.Gzip {
				if err := validate.Image(out); err != nil {
					t.Errorf("compressed image does not validate: %v", err)
				}
			}
		})
	}
}

// A second compression of the same layers, by another Compressor over the same
// memo (another push, another process), compresses nothing; a memo record whose
// blob was cut short (a crash) is not trusted; two memos give the same bytes.
func TestCompressImageMemo(t *testing.T) {
	t.Parallel()
	img, _ := builtImage(t)
	dir := t.TempDir()
	compress := func(dir string) (v1.Image, []output.LayerCompressed) {
		t.Helper()
		var mu sync.Mutex
		var got []output.LayerCompressed
		c, err := output.NewCompressor(dir, output.Gzip, 0, output.WithCompressReport(func(e output.LayerCompressed) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e)
		}))
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.CompressImage(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		return out, got
	}
	memoized := func(evs []output.LayerCompressed) (n int) {
		for _, e := range evs {
			if e.Memoized {
				n++
			}
		}
		return n
	}
	first, evs := compress(dir)
	if len(evs) != 2 || memoized(evs) != 0 {
		t.Fatalf("first compression: %+v, want two layers compressed", evs)
	}
	second, evs := compress(dir)
	if len(evs) != 2 || memoized(evs) != 2 {
		t.Errorf("second compression: %+v, want both layers from the memo", evs)
	}
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	if d1 != d2 {
		t.Errorf("manifest %s then %s", d1, d2)
	}
	other, _ := compress(t.TempDir())
	if d3, _ := other.Digest(); d3 != d1 {
		t.Errorf("another memo gave manifest %s, want %s: compression is not reproducible", d3, d1)
	}

	// Cut one memoized blob short: it is compressed again, not served.
	m, _ := first.Manifest()
	blob := filepath.Join(dir, "sha256-"+m.Layers[1].Digest.Hex)
	if err := os.Truncate(blob, 10); err != nil {
		t.Fatal(err)
	}
	third, evs := compress(dir)
	if len(evs) != 2 || memoized(evs) != 1 {
		t.Errorf("after a torn blob: %+v, want one layer compressed again", evs)
	}
	checkBlobs(t, third, false)
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left in the memo: %q", leftovers)
	}
}

// Write compresses before anything leaves: the docker-archive and the OCI layout get
// gzip layers by default and zstd ones when asked, under the right media types.
func TestWriteCompresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind     output.Compression
		manifest types.MediaType
		built    types.MediaType
	}{
		{"", types.DockerManifestSchema2, types.DockerLayer},
		{output.Zstd, types.OCIManifestSchema1, types.OCILayerZStd},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			img, _ := builtImage(t)
			dir := t.TempDir()
			spec := output.Spec{
				Names:   []name.Tag{mustTag(t, "registry.example/app:1")},
				Tarball: filepath.Join(dir, "image.tar"),
				Layout:  filepath.Join(dir, "layout"),
			}
			if tt.kind != "" {
				c, err := output.NewCompressor(t.TempDir(), tt.kind, 0)
				if err != nil {
					t.Fatal(err)
				}
				spec.Compressor = c
			}
			if err := output.Write(context.Background(), img, spec, nil); err != nil {
				t.Fatal(err)
			}
			fromTar, err := tarball.ImageFromPath(spec.Tarball, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := layout.FromPath(spec.Layout)
			if err != nil {
				t.Fatal(err)
			}
			ii, err := p.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			im, err := ii.IndexManifest()
			if err != nil || len(im.Manifests) != 1 {
				t.Fatalf("layout index: %v, %d entries", err, len(im.Manifests))
			}
			fromLayout, err := p.Image(im.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			for what, got := range map[string]v1.Image{"tarball": fromTar, "layout": fromLayout} {
				m, err := got.Manifest()
				if err != nil {
					t.Fatal(err)
				}
				// A docker-archive keeps no manifest: ggcr makes a Docker one from
				// the layers' own media types, as docker load does.
				if what == "layout" && m.MediaType != tt.manifest {
					t.Errorf("%s: manifest %s, want %s", what, m.MediaType, tt.manifest)
				}
				for i, d := range m.Layers[1:] {
					if what == "tarball" && tt.kind == output.Zstd {
						break // media types are guessed by ggcr from the blob
					}
					if d.MediaType != tt.built {
						t.Errorf("%s: layer %d is %s, want %s", what, i+1, d.MediaType, tt.built)
					}
				}
				checkBlobs(t, got, what == "tarball")
			}
		})
	}
}
