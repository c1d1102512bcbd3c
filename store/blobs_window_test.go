package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// A layer blob whose zstd frame asks for a window over compression.MaxZstdWindow is
// refused when its size is counted. The frame holds an empty tar, so an unbounded
// decoder would accept it.
func TestContentSizeRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 1024)
	n := len(payload)<<3 | 1
	frame := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, byte(n), byte(n >> 8), byte(n >> 16)}, payload...)
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, frame, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := contentSize(context.Background(), p); !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("contentSize: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
}
