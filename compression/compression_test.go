package compression_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/compression/compressiontest"
)

func TestDetect(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		head []byte
		want compression.Kind
	}{
		{[]byte{0x1f, 0x8b, 0x08, 0}, compression.Gzip},
		{[]byte{0x1f, 0x8b, 0x07, 0}, compression.Uncompressed}, // not deflate
		{[]byte("BZh91AY"), compression.Bzip2},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, compression.Xz},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, compression.Zstd},
		{[]byte{0x5a, 0x2a, 0x4d, 0x18, 4, 0, 0, 0}, compression.Zstd}, // skippable frame
		{[]byte("plain text"), compression.Uncompressed},
		{nil, compression.Uncompressed},
	} {
		if got := compression.Detect(tt.head); got != tt.want {
			t.Errorf("Detect(% x) = %s, want %s", tt.head, got, tt.want)
		}
	}
}

func TestNewReaderRoundTrip(t *testing.T) {
	t.Parallel()
	want := bytes.Repeat([]byte("kiln "), 1000)
	var gz, xzb, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(want)
	gw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(want)
	xw.Close()
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(want)
	zw.Close()
	for _, tt := range []struct {
		in   []byte
		kind compression.Kind
	}{
		{want, compression.Uncompressed},
		{gz.Bytes(), compression.Gzip},
		{xzb.Bytes(), compression.Xz},
		{zs.Bytes(), compression.Zstd},
	} {
		r, kind, err := compression.NewReader(bytes.NewReader(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.kind, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || kind != tt.kind || !bytes.Equal(got, want) {
			t.Errorf("%s: kind %s, %d bytes, err %v; want the %d bytes back", tt.kind, kind, len(got), err, len(want))
		}
	}
}

// A frame asking for a window over MaxZstdWindow is refused, not allocated.
func TestZstdWindowBounded(t *testing.T) {
	t.Parallel()
	r, _, err := compression.NewReader(bytes.NewReader(compressiontest.HugeWindowZstd(nil)))
	if err == nil {
		defer r.Close()
		_, err = io.ReadAll(r)
	}
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("reading a 1 GiB-window frame: err = %v, want %v", err, zstd.ErrWindowSizeExceeded)
	}
	// The same frame is accepted by an unbounded decoder, so the bound is what refuses it.
	zr, err := zstd.NewReader(bytes.NewReader(compressiontest.HugeWindowZstd(nil)), zstd.WithDecoderMaxWindow(1<<31))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if _, err := io.ReadAll(zr); err != nil {
		t.Fatalf("the frame itself is invalid: %v", err)
	}
}
