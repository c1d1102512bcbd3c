package output_test

import (
	"context"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder/output"
)

// A layer compressed by a Sink while it was written is the blob CompressImage would
// have made, and CompressImage then takes it from the memo, for gzip and zstd; an
// aborted sink leaves nothing, and a compressor keeping layers plain has no sink.
func TestSinkFillsMemo(t *testing.T) {
	t.Parallel()
	for _, kind := range []output.Compression{output.Gzip, output.Zstd} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			img, _ := builtImage(t)
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var memoized int
			c, err := output.NewCompressor(dir, kind, 0, output.WithCompressReport(func(e output.LayerCompressed) {
				if e.Memoized {
					memoized++
				}
			}), output.WithCompressJobs(1))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers[1:] { // the two plain layers
				s, err := c.NewSink()
				if err != nil || s == nil {
					t.Fatalf("NewSink: %v, %v", s, err)
				}
				rc, _ := l.Uncompressed()
				buf := make([]byte, 7) // odd-sized writes, as a tar writer's
				for {
					n, err := rc.Read(buf)
					s.Write(buf[:n])
					if err != nil {
						break
					}
				}
				rc.Close()
				d, _ := l.DiffID()
				if err := s.Commit(d); err != nil {
					t.Fatal(err)
				}
			}
			viaSink, err := c.CompressImage(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			if memoized != 2 {
				t.Errorf("CompressImage took %d layers from the memo, want the 2 the sinks wrote", memoized)
			}
			fresh, err := output.NewCompressor(t.TempDir(), kind, 0)
			if err != nil {
				t.Fatal(err)
			}
			direct, err := fresh.CompressImage(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := viaSink.Digest()
			d2, _ := direct.Digest()
			if d1 != d2 {
				t.Errorf("manifest through the sink %s, compressed at export %s", d1, d2)
			}
			if kind == output.Gzip {
				checkBlobs(t, viaSink, false)
			}

			s, err := c.NewSink()
			if err != nil {
				t.Fatal(err)
			}
			s.Write([]byte("half a layer"))
			s.Abort()
			if err := s.Commit(v1.Hash{Algorithm: "sha256", Hex: "00"}); err == nil {
				t.Error("Commit after Abort succeeded")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(left) != 0 {
				t.Errorf("an aborted sink left %q", left)
			}
		})
	}
	plain, err := output.NewCompressor(t.TempDir(), output.Uncompressed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := plain.NewSink(); s != nil || err != nil {
		t.Errorf("uncompressed compressor: sink %v, %v; want none", s, err)
	}
}
