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
)

// A zstd layer whose frame asks for a window over compression.MaxZstdWindow is refused
// when it is read. The frame holds an empty tar, so an unbounded decoder would accept it.
func TestUncompressedRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 1024)
	n := len(payload)<<3 | 1
	frame := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, byte(n), byte(n >> 8), byte(n >> 16)}, payload...)
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
