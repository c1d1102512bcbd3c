package contexts_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/compression/compressiontest"

	"github.com/kiln-build/kiln/contexts"
)

// A context body whose zstd frame asks for a window over compression.MaxZstdWindow is
// refused before the decoder allocates it. The frame holds an empty tar, so an unbounded
// decoder would accept it.
func TestFromArchiveRefusesHugeZstdWindow(t *testing.T) {
	t.Parallel()
	frame := compressiontest.HugeWindowZstd(make([]byte, 1024)) // an empty tar
	c, err := contexts.FromArchive(context.Background(), bytes.NewReader(frame), t.TempDir())
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("FromArchive: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
}
