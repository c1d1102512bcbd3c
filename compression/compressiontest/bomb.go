package compressiontest

import (
	"bytes"
	"compress/gzip"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Bomb streams size zero bytes compressed with kind ("gzip" or "zstd"), prefixed by
// head (e.g. a tar header), generated as it is read: a decompression bomb that never
// exists whole in memory or on disk. It is a sequence of gzip members (zstd frames),
// which decoders read as one stream: one compressed MiB of zeros, repeated, so the
// generator costs nothing (compressing 10 GB would take minutes under -race).
// The generator stops when the reader is closed.
func Bomb(kind string, head []byte, size int64) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		const block = 1 << 20
		zeros := make([]byte, block)
		if _, err := pw.Write(compress(kind, head)); err != nil {
			return
		}
		full := compress(kind, zeros)
		for ; size >= block; size -= block {
			if _, err := pw.Write(full); err != nil {
				return
			}
		}
		if size > 0 {
			if _, err := pw.Write(compress(kind, zeros[:size])); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

// compress returns p as one gzip member or zstd frame.
func compress(kind string, p []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	if kind == "zstd" {
		w, _ = zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	} else {
		w, _ = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	}
	w.Write(p)
	w.Close()
	return buf.Bytes()
}
