package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/builder"
)

// fsLayer is a layer of the given entries; a name ending in / is a directory.
func fsLayer(t *testing.T, entries ...string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, n := range entries {
		hdr := &tar.Header{Name: n, Mode: 0o640, Typeflag: tar.TypeReg, Size: int64(len(n)), ModTime: mtime}
		if n[len(n)-1] == '/' {
			hdr = &tar.Header{Name: n, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: mtime}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestExtractFilesystem(t *testing.T) {
	t.Parallel()
	img, err := mutate.AppendLayers(empty.Image,
		fsLayer(t, "a/", "a/keep", "a/gone", "o/", "o/old", "c/", "c/f"),
		fsLayer(t, "a/.wh.gone", "o/.wh..wh..opq", "o/new", "b"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := builder.ExtractFilesystem(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		exists bool
		mode   os.FileMode
	}{
		{"a/keep", true, 0o640},
		{"a/gone", false, 0},
		{"o/old", false, 0},
		{"o/new", true, 0o640},
		{"b", true, 0o640},
		{"a/.wh.gone", false, 0},
		{"a", true, os.ModeDir | 0o755},
	}
	for _, tt := range tests {
		fi, err := os.Lstat(filepath.Join(dir, tt.path))
		if got := err == nil; got != tt.exists {
			t.Errorf("%s exists = %v, want %v (%v)", tt.path, got, tt.exists, err)
			continue
		}
		if tt.exists && fi.Mode() != tt.mode {
			t.Errorf("%s mode = %v, want %v", tt.path, fi.Mode(), tt.mode)
		}
	}
	// A directory no later layer touched keeps its layer's mtime.
	if fi, err := os.Stat(filepath.Join(dir, "c")); err != nil || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("c: %v, want the layer's mtime (%v)", fi, err)
	}
}
