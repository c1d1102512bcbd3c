// Package compression recognises and undoes the stream compressions kiln reads: a build
// context body, an ADD archive, a `docker load` body, a layer blob. It is the one place
// that sniffs magic numbers and the one place that opens a zstd decoder, so every reader
// has the same bounds (a zstd frame cannot make the decoder allocate more than
// MaxZstdWindow).
package compression

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Kind is how a stream is compressed.
type Kind int

// The compressions dockerd recognises (go-archive's DecompressStream).
const (
	Uncompressed Kind = iota
	Gzip
	Bzip2
	Xz
	Zstd
)

// String names k as the compression's tool does.
func (k Kind) String() string {
	switch k {
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

// HeadSize is how many leading bytes Detect needs to tell every Kind apart.
const HeadSize = 8

var magics = []struct {
	k     Kind
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Bzip2, []byte{'B', 'Z', 'h'}},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// Detect names the compression whose magic number starts head. A zstd skippable frame
// (magic 0x184D2A5?) counts as zstd, as in go-archive.
func Detect(head []byte) Kind {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.k
		}
	}
	if len(head) >= 4 && binary.LittleEndian.Uint32(head)&0xFFFFFFF0 == 0x184D2A50 {
		return Zstd
	}
	return Uncompressed
}

// MaxZstdWindow bounds the memory a zstd frame may make the decoder allocate: a header
// claiming a larger window is refused rather than honoured. `zstd --long` uses 128 MiB.
// (The xz decoder has no such bound: it allocates the dictionary an LZMA2 block header
// asks for, up to 4 GiB. The docker CLI never sends xz.)
const MaxZstdWindow = 128 << 20

// NewZstdReader opens a zstd decoder on r with kiln's bounds: one goroutine, low memory,
// and a window of at most MaxZstdWindow. Close releases it.
func NewZstdReader(r io.Reader) (io.ReadCloser, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(MaxZstdWindow))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return zr.IOReadCloser(), nil
}

// NewReader returns the uncompressed stream of r, sniffing its compression from its
// first bytes; a stream with no known magic number is returned as it is. Errors name the
// compression. Closing the result does not close r.
func NewReader(r io.Reader) (io.ReadCloser, Kind, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(HeadSize) // a short stream is plain
	k := Detect(head)
	switch k {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, k, fmt.Errorf("%s: %w", k, err)
		}
		return zr, k, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), k, nil
	case Xz:
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, k, fmt.Errorf("%s: %w", k, err)
		}
		return io.NopCloser(zr), k, nil
	case Zstd:
		zr, err := NewZstdReader(br)
		return zr, k, err
	}
	return io.NopCloser(br), k, nil
}
