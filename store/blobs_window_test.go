package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/compression/compressiontest"
)

// A layer blob whose zstd frame asks for a window over compression.MaxZstdWindow is
// refused when its size is counted. The frame holds an empty tar, so an unbounded
// decoder would accept it.
func TestContentSizeRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	frame := compressiontest.HugeWindowZstd(make([]byte, 1024)) // an empty tar
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, frame, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := contentSize(context.Background(), p); !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("contentSize: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
}
