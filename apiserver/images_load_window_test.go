package apiserver

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/compression/compressiontest"
)

// A `docker load` body whose zstd frame asks for a window over compression.MaxZstdWindow
// is refused. The frame holds an empty tar, so an unbounded decoder would accept it.
func TestSpoolDecompressedRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	frame := compressiontest.HugeWindowZstd(make([]byte, 1024)) // an empty tar
	err := spoolDecompressed(context.Background(), bytes.NewReader(frame), filepath.Join(t.TempDir(), "load.tar"))
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("spoolDecompressed: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
}
