package contexts

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how a context archive is compressed.
type Compression int

// The compressions dockerd recognises in a build context (its DecompressStream).
const (
	Uncompressed Compression = iota
	Gzip
	Bzip2
	Xz
	Zstd
)

// String names c as the compression's tool does.
func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Bzip2:
		return "bzip2"
	case Xz:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return "uncompressed"
}

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Bzip2, []byte{'B', 'Z', 'h'}},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// DetectCompression names the compression whose magic number starts head.
func DetectCompression(head []byte) Compression {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return Uncompressed
}

// zstdMaxWindow bounds the memory a zstd frame may make the decoder allocate: a header
// claiming a huge window is refused rather than honoured. `zstd --long` uses 128 MiB.
// (The xz decoder has no such bound: it allocates the dictionary an LZMA2 block header
// asks for, up to 4 GiB. The docker CLI never sends xz.)
const zstdMaxWindow = 128 << 20

// decompress returns the uncompressed stream of r, sniffing its compression.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6) // a short stream is plain (and an invalid tar)
	c := DetectCompression(head)
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("build context: %s: %w", c, err)
		}
		return zr, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), nil
	case Xz:
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("build context: %s: %w", c, err)
		}
		return io.NopCloser(zr), nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("build context: %s: %w", c, err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}
