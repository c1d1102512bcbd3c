package snapshot

import (
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/kiln-build/kiln/compression"
)

// Compression selects how a layer blob is compressed.
type Compression int

const (
	// Gzip is what every registry and runtime accepts; Docker's media type.
	Gzip Compression = iota
	// Zstd is smaller and faster to decompress; needs a recent runtime.
	Zstd
	// Uncompressed writes the plain tar.
	Uncompressed
)

// ParseCompression parses kaniko's --compression values: "gzip" or "zstd" ("" =
// gzip). "none" writes uncompressed layers, which kaniko does not offer.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	case "none":
		return Uncompressed, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want gzip or zstd)", s)
}

// String returns the flag spelling of c.
func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "none"
	}
	return "gzip"
}

// CheckLevel reports whether level suits c: 0 keeps the compressor's default; gzip
// takes 1-9 and zstd 1-22 (zstd's scale, which the encoder maps onto its four
// speeds: 1-2 fastest, 3-5 default, 6-9 better, 10-22 best). Uncompressed layers
// take no level.
func (c Compression) CheckLevel(level int) error {
	if level == 0 {
		return nil
	}
	var top int
	switch c {
	case Gzip:
		top = 9
	case Zstd:
		top = 22
	default:
		return fmt.Errorf("compression level %d: %s layers take no level", level, c)
	}
	if level < 1 || level > top {
		return fmt.Errorf("compression level %d out of range: %s takes 1-%d", level, c, top)
	}
	return nil
}

// mediaType returns the media type of a layer compressed with c.
func (c Compression) mediaType() types.MediaType {
	switch c {
	case Zstd:
		return types.OCILayerZStd
	case Uncompressed:
		return types.OCIUncompressedLayer
	}
	return types.DockerLayer
}

// compressionOf maps a media type back to its compression.
func compressionOf(mt types.MediaType) Compression {
	switch mt {
	case types.OCILayerZStd:
		return Zstd
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer, types.OCIUncompressedRestrictedLayer:
		return Uncompressed
	}
	return Gzip
}

// Layer is a layer blob on disk. It implements go-containerregistry's v1.Layer, so
// images can be assembled with mutate and written or pushed without copying it.
type Layer struct {
	path        string
	digest      v1.Hash
	diffID      v1.Hash
	size        int64
	files       int
	content     int64 // ContentSize's answer, counted as the layer was written
	compression Compression
}

var _ v1.Layer = (*Layer)(nil)

// LayerFromFile re-opens a blob written earlier (by WriteLayer or fetched whole),
// trusting the given digests rather than reading the file.
func LayerFromFile(path string, digest, diffID v1.Hash, size int64, mt types.MediaType) *Layer {
	return &Layer{path: path, digest: digest, diffID: diffID, size: size, files: -1, compression: compressionOf(mt)}
}

// Path returns the blob file's path.
func (l *Layer) Path() string { return l.path }

// WrittenFile returns the blob file's path for a layer this process wrote (its
// digests computed from the bytes as they were written, the file never changed after),
// and "" for one re-opened with LayerFromFile, whose digests are only trusted. A store
// may link such a file instead of copying and hashing it again.
func (l *Layer) WrittenFile() string {
	if l.files < 0 {
		return ""
	}
	return l.path
}

// ContentSize returns the sum of the layer's regular file sizes and symlink target
// lengths (how dockerd counts an image's size), counted as the layer was written, or
// false for a layer from LayerFromFile: a store need not read the blob to know it.
func (l *Layer) ContentSize() (int64, bool) { return l.content, l.files >= 0 }

// Files returns the number of tar entries, or -1 for a layer from LayerFromFile.
func (l *Layer) Files() int { return l.files }

// Digest returns the sha256 of the compressed blob.
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID returns the sha256 of the uncompressed tar.
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size returns the compressed size in bytes.
func (l *Layer) Size() (int64, error) { return l.size, nil }

// MediaType returns the media type matching the layer's compression.
func (l *Layer) MediaType() (types.MediaType, error) { return l.compression.mediaType(), nil }

// Compressed opens the blob file.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("opening layer: %w", err)
	}
	return f, nil
}

// Uncompressed opens the blob file through a decompressor.
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("opening layer: %w", err)
	}
	switch l.compression {
	case Uncompressed:
		return f, nil
	case Zstd:
		d, err := compression.NewZstdReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reading layer %s: %w", l.path, err)
		}
		return &readCloser{Reader: d, close: func() error { d.Close(); return f.Close() }}, nil
	}
	z, err := pgzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading layer %s: %w", l.path, err)
	}
	return &readCloser{Reader: z, close: func() error { z.Close(); return f.Close() }}, nil
}

// readCloser closes a decompressor together with the file under it.
type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
