package output

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression is how the layers an image leaves kiln with are compressed, in the
// spelling of --compression: "gzip" (also ""), "zstd" or "none".
type Compression string

// The compressions outputs write.
const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "none"
)

// Compressor brings the uncompressed layers of an image (kiln writes every layer of a
// build as a plain tar, its digest its diff ID) to the compression an output asks for.
// Compressed blobs are memoized on disk, keyed by (diff ID, compression, level), so a
// second push of the image, or a tarball after a rebuild from the step cache, reuses
// them. Layers already compressed (base-image layers as pulled) are left as they are.
// A Compressor is safe for concurrent use, also by several processes sharing dir.
type Compressor struct {
	dir    string
	kind   Compression
	level  int
	jobs   int
	onDone func(LayerCompressed)
	onTime func(time.Duration)

	reportMu sync.Mutex // one onDone call at a time
}

// LayerCompressed reports one layer CompressImage brought to its compression:
// Memoized is true when the blob came from the memo and nothing was compressed.
type LayerCompressed struct {
	DiffID, Digest v1.Hash
	Size           int64
	Memoized       bool
}

// CompressorOption configures NewCompressor.
type CompressorOption func(*Compressor)

// WithCompressJobs bounds how many layers are compressed at once (default 2; each
// gzip stream is itself spread over the cores by pgzip).
func WithCompressJobs(n int) CompressorOption {
	return func(c *Compressor) {
		if n > 0 {
			c.jobs = n
		}
	}
}

// WithCompressReport calls fn for each layer brought to the compression, one call at
// a time (layers are compressed in parallel; fn needs no lock of its own).
func WithCompressReport(fn func(LayerCompressed)) CompressorOption {
	return func(c *Compressor) { c.onDone = fn }
}

// WithCompressTimer calls fn with the wall time of each CompressImage that had
// layers to compress (memo hits included), so a door can put it in its build's
// compression phase.
func WithCompressTimer(fn func(time.Duration)) CompressorOption {
	return func(c *Compressor) { c.onTime = fn }
}

// NewCompressor returns a Compressor writing kind at level (0: the compressor's
// default; gzip 1-9, zstd 1-22) with its memo in dir, which is created when needed.
func NewCompressor(dir string, kind Compression, level int, opts ...CompressorOption) (*Compressor, error) {
	if kind == "" {
		kind = Gzip
	}
	top := 0
	switch kind {
	case Gzip:
		top = 9
	case Zstd:
		top = 22
	case Uncompressed:
	default:
		return nil, fmt.Errorf("unknown compression %q (want gzip, zstd or none)", kind)
	}
	if level != 0 && (level < 1 || level > top) {
		return nil, fmt.Errorf("compression level %d out of range for %s", level, kind)
	}
	c := &Compressor{dir: dir, kind: kind, level: level, jobs: 2}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// CompressImage is the compression phase of an output: it returns img with each
// uncompressed layer replaced by its compressed blob (from the memo, or compressed
// now, streaming, independent layers concurrently), under the media type the
// manifest's kind gives it: Docker's gzip type in a Docker manifest, the OCI ones in
// an OCI manifest, and zstd turning a Docker manifest into an OCI one (schema 2 has
// no zstd type). With Uncompressed the bytes stay and only the media types are
// settled. The config, and so the image ID, never changes.
func (c *Compressor) CompressImage(ctx context.Context, img v1.Image) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("compressing layers: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("compressing layers: %w", err)
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("compressing layers: the manifest names %d layers, the image has %d", len(m.Layers), len(layers))
	}
	out := make([]v1.Layer, len(layers))
	copy(out, layers)
	todo := map[v1.Hash][]int{} // diff ID -> indexes of uncompressed layers
	var order []v1.Hash
	for i, d := range m.Layers {
		if !isUncompressed(d.MediaType) {
			continue
		}
		diffID, err := layers[i].DiffID()
		if err != nil {
			return nil, fmt.Errorf("compressing layer %d: %w", i, err)
		}
		if _, ok := todo[diffID]; !ok {
			order = append(order, diffID)
		}
		todo[diffID] = append(todo[diffID], i)
	}
	if len(order) == 0 {
		return img, nil
	}
	if c.kind != Uncompressed {
		if c.onTime != nil {
			defer func(start time.Time) { c.onTime(time.Since(start)) }(time.Now())
		}
		if err := c.compressAll(ctx, order, todo, layers, out); err != nil {
			return nil, err
		}
	}
	return rewrapImage(img, m, out, todo, c.kind)
}

// compressAll compresses the layers named by order, at most c.jobs at a time, and
// puts each result at its indexes in out. The first error cancels the rest.
func (c *Compressor) compressAll(ctx context.Context, order []v1.Hash, todo map[v1.Hash][]int, layers, out []v1.Layer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	slots := make(chan struct{}, c.jobs)
	for _, diffID := range order {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			l, err := c.layer(ctx, diffID, layers[todo[diffID][0]])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				cancel()
				return
			}
			for _, i := range todo[diffID] {
				out[i] = l
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// isUncompressed reports a plain-tar layer media type (foreign layers stay foreign).
func isUncompressed(mt types.MediaType) bool {
	return mt == types.OCIUncompressedLayer || mt == types.DockerUncompressedLayer
}

// memoEntry is the index record of one memoized blob.
type memoEntry struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"`
}

// memoKey names the memo of diffID for this compressor's kind and level.
func (c *Compressor) memoKey(diffID v1.Hash) string {
	return filepath.Join(c.dir, diffID.Algorithm+"-"+diffID.Hex+"."+string(c.kind)+"-"+strconv.Itoa(c.level)+".json")
}

// blobPath is where a memoized blob lives.
func (c *Compressor) blobPath(digest v1.Hash) string {
	return filepath.Join(c.dir, digest.Algorithm+"-"+digest.Hex)
}

// layer returns src compressed: from the memo when it holds a complete blob, else
// compressed now and memoized.
func (c *Compressor) layer(ctx context.Context, diffID v1.Hash, src v1.Layer) (*compressedLayer, error) {
	if l := c.lookup(diffID, src); l != nil {
		c.report(LayerCompressed{DiffID: diffID, Digest: l.digest, Size: l.size, Memoized: true})
		return l, nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", diffID, err)
	}
	l, err := c.compress(ctx, diffID, src)
	if err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", diffID, err)
	}
	c.report(LayerCompressed{DiffID: diffID, Digest: l.digest, Size: l.size})
	return l, nil
}

func (c *Compressor) report(e LayerCompressed) {
	if c.onDone != nil {
		c.reportMu.Lock()
		defer c.reportMu.Unlock()
		c.onDone(e)
	}
}

// lookup returns the memoized blob of diffID, or nil when there is none or it is
// incomplete (a size that does not match its record).
func (c *Compressor) lookup(diffID v1.Hash, src v1.Layer) *compressedLayer {
	raw, err := os.ReadFile(c.memoKey(diffID))
	if err != nil {
		return nil
	}
	var e memoEntry
	if json.Unmarshal(raw, &e) != nil || e.Digest.Hex == "" {
		return nil
	}
	p := c.blobPath(e.Digest)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != e.Size {
		return nil
	}
	return &compressedLayer{path: p, digest: e.Digest, diffID: diffID, size: e.Size, src: src}
}

// compress streams src's tar through the compressor into a temporary file, names it
// by its digest and then records it under diffID: a crash of kiln leaves at worst a
// temporary file or an unreferenced blob, never a record of a partial blob.
func (c *Compressor) compress(ctx context.Context, diffID v1.Hash, src v1.Layer) (*compressedLayer, error) {
	rc, err := src.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(c.dir, ".blob-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	// Not synced: an fsync costs more than a tenth of the compression itself, and a
	// blob cut short by a power cut has the wrong size, which lookup checks.
	digest, size, err := c.stream(ctx, tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p := c.blobPath(digest)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(memoEntry{Digest: digest, Size: size})
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(c.memoKey(diffID), raw); err != nil {
		return nil, err
	}
	return &compressedLayer{path: p, digest: digest, diffID: diffID, size: size, src: src}, nil
}

// stream compresses r into f and returns the blob's digest and size.
func (c *Compressor) stream(ctx context.Context, f *os.File, r io.Reader) (v1.Hash, int64, error) {
	buf := bufio.NewWriterSize(f, 1<<20)
	h := sha256.New()
	var n countingSink
	zw, err := c.newWriter(io.MultiWriter(buf, h, &n))
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if _, err := io.Copy(zw, ctxReader{ctx, r}); err != nil {
		zw.Close()
		return v1.Hash{}, 0, err
	}
	if err := zw.Close(); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := buf.Flush(); err != nil {
		return v1.Hash{}, 0, err
	}
	return hashOf(h), int64(n), nil
}

// newWriter opens the compressor. Its settings are fixed (no name or mtime in the
// gzip header, pgzip's default block size, zstd's default window) so that equal
// tars give equal blobs: --reproducible builds depend on it.
func (c *Compressor) newWriter(w io.Writer) (io.WriteCloser, error) {
	switch c.kind {
	case Zstd:
		opts := []zstd.EOption{}
		if c.level != 0 {
			opts = append(opts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.level)))
		}
		return zstd.NewWriter(w, opts...)
	case Gzip:
		level := c.level
		if level == 0 {
			level = gzip.DefaultCompression // Docker's and kaniko's
		}
		return pgzip.NewWriterLevel(w, level)
	}
	return nil, fmt.Errorf("no compressor for %q", c.kind)
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// countingSink counts the bytes written to it.
type countingSink int64

func (c *countingSink) Write(p []byte) (int, error) {
	*c += countingSink(len(p))
	return len(p), nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// writeFileAtomic replaces path with data through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".memo-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// compressedLayer is a memoized blob: its bytes from the memo file, its tar from the
// layer it was made from.
type compressedLayer struct {
	path   string
	digest v1.Hash
	diffID v1.Hash
	size   int64
	mt     types.MediaType
	src    v1.Layer
}

func (l *compressedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *compressedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *compressedLayer) Size() (int64, error)                { return l.size, nil }
func (l *compressedLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *compressedLayer) Uncompressed() (io.ReadCloser, error) {
	return l.src.Uncompressed()
}
func (l *compressedLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("compressed layer %s was removed from %s: %w", l.diffID, l.path, err)
	}
	return f, err
}

// CompressLayer returns l compressed as CompressImage would compress it in a Docker
// manifest (an OCI one for zstd), l itself when it is not a plain tar.
func (c *Compressor) CompressLayer(ctx context.Context, l v1.Layer) (v1.Layer, error) {
	mt, err := l.MediaType()
	if err != nil || !isUncompressed(mt) {
		return l, err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	want := layerType(c.kind, false)
	if c.kind == Uncompressed {
		return &typedLayer{Layer: l, mt: want}, nil
	}
	cl, err := c.layer(ctx, diffID, l)
	if err != nil {
		return nil, err
	}
	cl.mt = want
	return cl, nil
}

// Produces reports whether mt is the media type of a layer this compressor makes, in
// a Docker or an OCI manifest.
func (c *Compressor) Produces(mt types.MediaType) bool {
	return mt == layerType(c.kind, false) || mt == layerType(c.kind, true)
}
