package snapshot

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/compression/compressiontest"
)

// A zstd layer whose frame asks for a window over compression.MaxZstdWindow is refused
// when it is read. The frame holds an empty tar, so an unbounded decoder would accept it.
func TestUncompressedRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	frame := compressiontest.HugeWindowZstd(make([]byte, 1024)) // an empty tar
	p := filepath.Join(t.TempDir(), "layer")
	if err := os.WriteFile(p, frame, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := LayerFromFile(p, v1.Hash{}, v1.Hash{}, int64(len(frame)), types.OCILayerZStd).Uncompressed()
	if err == nil {
		defer rc.Close()
		_, err = io.ReadAll(rc)
	}
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("Uncompressed: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
}
