package copier

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Magic numbers of the compressions ADD recognises, as go-archive's Detect does.
var (
	bzip2Magic = []byte{0x42, 0x5A, 0x68}
	gzipMagic  = []byte{0x1F, 0x8B, 0x08}
	xzMagic    = []byte{0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00}
	zstdMagic  = []byte{0x28, 0xB5, 0x2F, 0xFD}
)

// isArchive reports whether the file at host is a tar archive, plain or compressed,
// judged by content and never by name: after decompression, a first tar header must
// read cleanly (an empty archive therefore is copied as a file, as in Docker).
func isArchive(host string) (bool, error) {
	f, err := os.Open(host)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", host, unwrapPathError(err))
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return false, nil // undecodable compressed data: a plain file
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil, nil
}

// decompress returns r's content, decompressed when it starts with the magic number
// of bzip2, gzip, xz or zstd.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(8)
	switch {
	case bytes.HasPrefix(head, bzip2Magic):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(head, gzipMagic):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, xzMagic):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(xr), nil
	case isZstd(head):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// isZstd recognises a zstd frame or a skippable frame (magic 0x184D2A5?).
func isZstd(head []byte) bool {
	if bytes.HasPrefix(head, zstdMagic) {
		return true
	}
	return len(head) >= 4 && binary.LittleEndian.Uint32(head)&0xFFFFFFF0 == 0x184D2A50
}

// extract unpacks the local archive it into destHost, the classic builder's Untar: a
// missing destination is created (owned by 0:0, whatever --chown says), entries keep
// the owners recorded in the archive, and .wh. files are ordinary files here.
func (c *copier) extract(ctx context.Context, it item, destHost string) error {
	isDir, err := c.isExistingDir(destHost)
	if err != nil {
		return err
	}
	if !isDir {
		if err := c.mkdirAll(destHost, Owner{}); err != nil {
			return err
		}
	}
	f, err := os.Open(it.host)
	if err != nil {
		return fmt.Errorf("open %s: %w", it.rel, unwrapPathError(err))
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return fmt.Errorf("decompressing %s: %w", it.rel, err)
	}
	defer r.Close()
	if err := c.untar(ctx, c.imagePath(destHost), r); err != nil {
		return fmt.Errorf("extracting %s to %s: %w", it.rel, c.imagePath(destHost), err)
	}
	return nil
}
