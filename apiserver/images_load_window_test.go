package apiserver

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// A `docker load` body whose zstd frame asks for a window over compression.MaxZstdWindow
// is refused. The frame holds an empty tar, so an unbounded decoder would accept it.
func TestSpoolDecompressedRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 1024)
	n := len(payload)<<3 | 1
	frame := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, byte(n), byte(n >> 8), byte(n >> 16)}, payload...)
	err := spoolDecompressed(context.Background(), bytes.NewReader(frame), filepath.Join(t.TempDir(), "load.tar"))
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("spoolDecompressed: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
}
