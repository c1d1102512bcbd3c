package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Put records each new layer's unpacked size as dockerd counts it: regular files and
// symlink targets (hard links add nothing), through any compression, and the stored
// size for a blob that is not a tar.
func TestPutCountsLayerContent(t *testing.T) {
	t.Parallel()
	plain := tarOfHeaders(t,
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "d/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10},
		&tar.Header{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "target"},
		&tar.Header{Name: "d/h", Typeflag: tar.TypeLink, Linkname: "d/a"},
		&tar.Header{Name: "b", Typeflag: tar.TypeReg, Mode: 0o644, Size: 70000},
	)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	notTar := []byte("an artifact, not a tar")
	tests := []struct {
		name string
		blob []byte
		mt   types.MediaType
		want int64
	}{
		{"plain tar", plain, types.OCIUncompressedLayer, 10 + 6 + 70000},
		{"gzip tar", gz.Bytes(), types.OCILayer, 10 + 6 + 70000},
		{"not a tar", notTar, types.OCIUncompressedLayer, int64(len(notTar))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.TempDir())
			im := putLayer(t, s, static.NewLayer(tt.blob, tt.mt))
			if len(im.Layers) != 1 || im.Layers[0].Size != tt.want || im.Size != tt.want {
				t.Fatalf("stored sizes: image %d, layers %+v; want %d", im.Size, im.Layers, tt.want)
			}
			if tt.blob[0] == notTar[0] {
				return
			}
			back, err := contentSize(context.Background(), s.blobPath(im.Layers[0].Digest))
			if err != nil || back != tt.want {
				t.Errorf("contentSize of the stored blob = %d, %v; want %d", back, err, tt.want)
			}
		})
	}
}

// fileLayer is a layer with a blob file of its own, as snapshot.Layer has; path ""
// is a file whose digest is only trusted (LayerFromFile).
type fileLayer struct {
	v1.Layer
	path string
}

func (l fileLayer) WrittenFile() string { return l.path }

// A layer whose blob is a file kiln just wrote (a writtenBlob) is stored by a hard
// link to that file; one whose file does not match its size, or whose digest is only
// trusted, is copied; either way the stored blob is whole and counts its content.
func TestPutLinksFileBlobs(t *testing.T) {
	t.Parallel()
	blob := tarOf(t, 3, 1000)
	for _, tt := range []struct {
		name     string
		onDisk   []byte
		wantLink bool
	}{
		{"linked", blob, true},
		{"file of another size: copied", blob[:len(blob)-512], false},
		{"trusted file: copied", blob, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "layer.tar")
			if err := os.WriteFile(src, tt.onDisk, 0o600); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, filepath.Join(dir, "store"))
			fl := fileLayer{static.NewLayer(blob, types.OCIUncompressedLayer), src}
			if strings.HasPrefix(tt.name, "trusted") {
				fl.path = ""
			}
			im := putLayer(t, s, fl)
			if im.Size != 3000 {
				t.Errorf("stored size %d, want 3000", im.Size)
			}
			stored := s.blobPath(im.Layers[0].Digest)
			a, errA := os.Stat(src)
			b, errB := os.Stat(stored)
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if os.SameFile(a, b) != tt.wantLink {
				t.Errorf("stored blob is the source file: %v, want %v", os.SameFile(a, b), tt.wantLink)
			}
			got, err := os.ReadFile(stored)
			if err != nil || !bytes.Equal(got, blob) {
				t.Errorf("stored blob differs from the layer (%d bytes, %v)", len(got), err)
			}
			if left, _ := os.ReadDir(filepath.Join(s.dir, tmpDir)); len(left) != 0 {
				t.Errorf("left in tmp: %v", left)
			}
		})
	}
}

// sizedLayer is a layer that says its content size, as snapshot.Layer does.
type sizedLayer struct {
	v1.Layer
	size  int64
	known bool
}

func (l sizedLayer) ContentSize() (int64, bool) { return l.size, l.known }

// A layer that knows its content size is taken at its word (the store does not read
// the blob to count it); one that does not is counted from the blob.
func TestPutTakesKnownContentSize(t *testing.T) {
	t.Parallel()
	blob := tarOf(t, 3, 1000)
	for _, tt := range []struct {
		known bool
		want  int64
	}{{true, 1234}, {false, 3000}} {
		s := openStore(t, t.TempDir())
		im := putLayer(t, s, sizedLayer{static.NewLayer(blob, types.OCIUncompressedLayer), 1234, tt.known})
		if im.Size != tt.want || im.Layers[0].Size != tt.want {
			t.Errorf("known=%v: stored size %d (layer %d), want %d", tt.known, im.Size, im.Layers[0].Size, tt.want)
		}
	}
}

// tarOf is a plain tar of n files of size bytes each.
func tarOf(tb testing.TB, n, size int) []byte {
	tb.Helper()
	hdrs := make([]*tar.Header, n)
	for i := range hdrs {
		hdrs[i] = &tar.Header{Name: "f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}
	}
	return tarOfHeaders(tb, hdrs...)
}

// tarOfHeaders is a plain tar of these entries, each file's content its size in 'k's.
func tarOfHeaders(tb testing.TB, hdrs ...*tar.Header) []byte {
	tb.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(bytes.Repeat([]byte{'k'}, int(h.Size))); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return plain.Bytes()
}

// putLayer stores an image of the one layer l and returns its record.
func putLayer(t *testing.T, s *Store, l v1.Layer) *Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Put(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	_, im, err := s.Resolve(id.String())
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// BenchmarkPutNewLayer stores an image whose one layer is a new 64 MiB plain tar of
// 640 files: the store's share of every build's export. "copied": the blob is copied,
// hashed and synced; "linked": it is a file of its own (a built layer, just written),
// hard-linked and synced. Both then read the blob once to count its content.
func BenchmarkPutNewLayer(b *testing.B) {
	plain := tarOf(b, 640, 100<<10)
	src := filepath.Join(b.TempDir(), "layer.tar")
	layer := static.NewLayer(plain, types.OCIUncompressedLayer)
	for _, bc := range []struct {
		name  string
		layer v1.Layer
	}{{"copied", layer}, {"linked", fileLayer{layer, src}}} {
		b.Run(bc.name, func(b *testing.B) {
			img, err := mutate.AppendLayers(empty.Image, bc.layer)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				b.StopTimer()
				s, err := Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				// A layer just built: its file is new, its pages not yet on disk.
				_ = os.Remove(src)
				if err := os.WriteFile(src, plain, 0o600); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := s.Put(context.Background(), img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
