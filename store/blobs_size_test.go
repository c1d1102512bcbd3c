package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"strconv"
	"testing"

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
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "d/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10},
		{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "target"},
		{Name: "d/h", Typeflag: tar.TypeLink, Linkname: "d/a"},
		{Name: "b", Typeflag: tar.TypeReg, Mode: 0o644, Size: 70000},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain.Bytes())
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
		{"plain tar", plain.Bytes(), types.OCIUncompressedLayer, 10 + 6 + 70000},
		{"gzip tar", gz.Bytes(), types.OCILayer, 10 + 6 + 70000},
		{"not a tar", notTar, types.OCIUncompressedLayer, int64(len(notTar))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.TempDir())
			img, err := mutate.AppendLayers(empty.Image, static.NewLayer(tt.blob, tt.mt))
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

// BenchmarkPutNewLayer stores an image whose one layer is a new 64 MiB plain tar of
// 640 files: the store's share of every build's export (the blob is copied, hashed,
// synced, then read again to count its content).
func BenchmarkPutNewLayer(b *testing.B) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	body := bytes.Repeat([]byte{'k'}, 100<<10)
	for i := range 640 {
		if err := tw.WriteHeader(&tar.Header{Name: "f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			b.Fatal(err)
		}
		_, _ = tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(plain.Bytes(), types.OCIUncompressedLayer))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(plain.Len()))
	for b.Loop() {
		b.StopTimer()
		s, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Put(context.Background(), img); err != nil {
			b.Fatal(err)
		}
	}
}
