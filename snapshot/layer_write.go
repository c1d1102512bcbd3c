package snapshot

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

// LayerOption configures WriteLayer.
type LayerOption func(*layerConfig)

type layerConfig struct {
	compression  Compression
	level        int
	reproducible bool
	ignore       *Ignore
	plan         *Plan // files taken from their sources, not the root (layer_plan.go)
	tee          io.Writer
	writeback    bool
}

// WithCompression selects the blob's compression; the default is Gzip.
func WithCompression(c Compression) LayerOption {
	return func(lc *layerConfig) { lc.compression = c }
}

// WithLevel sets the compressor's level in its own scale (gzip 1-9, zstd 1-22);
// 0 keeps the compressor's default.
func WithLevel(level int) LayerOption {
	return func(lc *layerConfig) { lc.level = level }
}

// WithReproducible writes every mtime as the Unix epoch (kaniko's --reproducible),
// so equal trees give equal digests whenever they were built.
func WithReproducible(on bool) LayerOption {
	return func(lc *layerConfig) { lc.reproducible = on }
}

// WithTee also gives w the layer's tar as it is written (an output compressing it in
// the same pass). w's errors are its own business: it must not fail the layer.
func WithTee(w io.Writer) LayerOption {
	return func(lc *layerConfig) { lc.tee = w }
}

// WithWriteback starts writing the blob file to disk while the layer is written
// (sync_file_range), for a layer that will be synced when it is stored (a step cache,
// an image store): that sync then waits for little, where it waited for the whole
// blob (0.15 s for 100 MB here) after the build.
func WithWriteback(on bool) LayerOption {
	return func(lc *layerConfig) { lc.writeback = on }
}

// WithLayerIgnore leaves ignored paths out of the layer.
func WithLayerIgnore(ig *Ignore) LayerOption {
	return func(lc *layerConfig) { lc.ignore = ig }
}

// WriteLayer writes a layer tar holding ch into a new blob file under dir, named
// "sha256-<hex of its digest>" like the builder's pulled blobs, so equal blobs
// share one file. It streams tar -> compressor -> file and computes the digest and
// the diffID in the same pass; a layer is never held whole in memory. Changed paths
// that no longer exist are skipped, as are ignored paths.
func WriteLayer(ctx context.Context, root, dir string, ch *Changes, opts ...LayerOption) (*Layer, error) {
	var cfg layerConfig
	for _, o := range opts {
		o(&cfg)
	}
	rfs, err := newRootFS(root)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".layer-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating layer file: %w", err)
	}
	l, err := writeBlob(ctx, tmp, rfs.root, ch, cfg)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing layer file: %w", cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	l.path = filepath.Join(dir, l.digest.Algorithm+"-"+l.digest.Hex)
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("storing layer: %w", err)
	}
	return l, nil
}

// writeBlob streams the layer into f: tar -> (diffID hash, compressor) and
// compressor -> (buffered file, digest hash, byte count).
func writeBlob(ctx context.Context, f *os.File, root string, ch *Changes, cfg layerConfig) (*Layer, error) {
	var file io.Writer = f
	var wb *writeback
	if cfg.writeback {
		wb = &writeback{f: f, fd: int(f.Fd())}
		file = wb
	}
	buf := bufio.NewWriterSize(file, 1<<20)
	diffID := sha256.New()
	digest := sha256.New()
	var size countWriter
	out := io.MultiWriter(buf, digest, &size)
	if cfg.compression == Uncompressed {
		digest = diffID // the blob is the tar: one hash serves both
		out = io.MultiWriter(buf, &size)
	}
	comp, err := newCompressor(out, cfg)
	if err != nil {
		return nil, err
	}
	tarOut := io.MultiWriter(comp, diffID)
	if cfg.tee != nil {
		tarOut = io.MultiWriter(comp, diffID, cfg.tee)
	}
	tw := tar.NewWriter(tarOut)
	lw := &layerWriter{
		cfg:     cfg,
		root:    root,
		tw:      tw,
		written: map[string]bool{},
		links:   map[inodeKey]string{},
		buf:     make([]byte, copyBufferSize),
	}
	if err := lw.writeChanges(ctx, ch); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finishing layer tar: %w", err)
	}
	if err := comp.Close(); err != nil {
		return nil, fmt.Errorf("finishing layer compression: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return nil, fmt.Errorf("writing layer file: %w", err)
	}
	if wb != nil {
		wb.start()
	}
	return &Layer{
		digest:      sha256Hash(digest),
		diffID:      sha256Hash(diffID),
		size:        int64(size),
		files:       lw.files,
		content:     lw.content,
		compression: cfg.compression,
	}, nil
}

// writeback writes to a file and has the kernel start writing each writebackChunk
// of it to disk, without waiting.
type writeback struct {
	f        *os.File
	fd       int
	off, pen int64 // what was started, what was written since
}

const writebackChunk = 8 << 20

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.pen += int64(n)
	if w.pen >= writebackChunk {
		w.start()
	}
	return n, err
}

// start starts writing what was written since the last start; a failure only loses
// the head start (the sync that stores the blob reports real errors).
func (w *writeback) start() {
	if w.pen == 0 {
		return
	}
	_ = unix.SyncFileRange(w.fd, w.off, w.pen, unix.SYNC_FILE_RANGE_WRITE)
	w.off, w.pen = w.off+w.pen, 0
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// newCompressor wraps w in the configured compressor.
func newCompressor(w io.Writer, cfg layerConfig) (io.WriteCloser, error) {
	if err := cfg.compression.CheckLevel(cfg.level); err != nil {
		return nil, err
	}
	switch cfg.compression {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Zstd:
		opts := []zstd.EOption{}
		if cfg.level != 0 {
			opts = append(opts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(cfg.level)))
		}
		z, err := zstd.NewWriter(w, opts...)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return z, nil
	case Gzip:
		level := cfg.level
		if level == 0 {
			// Docker's and kaniko's default; pgzip spreads it over all cores, which
			// keeps it fast enough that a faster, larger level buys little.
			level = gzip.DefaultCompression
		}
		z, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		// The zero header (no name, zero mtime) is Docker's, and what makes
		// reproducible layers byte-identical.
		return z, nil
	}
	return nil, fmt.Errorf("unknown compression %d", cfg.compression)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// countWriter counts the bytes written through it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// inodeKey identifies a file for hardlink detection.
type inodeKey struct{ dev, ino uint64 }

// layerWriter is the state of one WriteLayer call.
type layerWriter struct {
	cfg     layerConfig
	root    string
	tw      *tar.Writer
	written map[string]bool     // image paths already in the tar: true for directories
	links   map[inodeKey]string // first tar name of each multiply-linked file
	// planLinks is the first tar name of each planned file (layer_plan.go).
	planLinks map[*PlannedFile]string
	prefetch  *prefetcher // planned files read ahead (layer_prefetch.go); nil: none
	buf       []byte
	files     int
	content   int64 // regular files' sizes and symlink targets' lengths written
}

// item is one path to put in the layer, in path order.
type item struct {
	img     string
	changed bool
	deleted bool
	opaque  bool
}

func (lw *layerWriter) writeChanges(ctx context.Context, ch *Changes) error {
	if ch == nil {
		return nil
	}
	items := lw.items(ch)
	lw.prefetch = startPrefetch(items, lw.cfg.plan, lw.root)
	defer lw.prefetch.close()
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := lw.parents(it.img)
		if err != nil {
			return err
		}
		if !ok {
			continue // an ancestor is gone or no longer a directory
		}
		if it.deleted {
			if err := lw.whiteout(it.img); err != nil {
				return err
			}
			continue
		}
		if _, done := lw.written[it.img]; done {
			continue
		}
		isDir, err := lw.writePath(it.img)
		if err != nil {
			return err
		}
		if it.opaque && isDir {
			if err := lw.marker(it.img + "/" + opaqueMarker); err != nil {
				return err
			}
		}
	}
	return nil
}

// items merges Changed, Opaque and Deleted into one sorted, de-duplicated list.
func (lw *layerWriter) items(ch *Changes) []item {
	byPath := map[string]*item{}
	add := func(p string, set func(*item)) {
		p = path.Clean("/" + p)
		if p == "/" || lw.cfg.ignore.Match(p) {
			return
		}
		it, ok := byPath[p]
		if !ok {
			it = &item{img: p}
			byPath[p] = it
		}
		set(it)
	}
	for _, p := range ch.Changed {
		add(p, func(it *item) { it.changed = true })
	}
	for _, p := range ch.Opaque {
		add(p, func(it *item) { it.opaque = true })
	}
	for _, p := range ch.Deleted {
		add(p, func(it *item) { it.deleted = true })
	}
	items := make([]item, 0, len(byPath))
	for _, it := range byPath {
		if it.changed || it.opaque {
			it.deleted = false // re-created after removal: written, not whited out
		}
		items = append(items, *it)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].img < items[j].img })
	return items
}

// parents writes img's ancestors not yet in the tar, with their current metadata.
// It reports false when one is missing or is not a real directory, in which case
// img cannot be in the tree as named.
func (lw *layerWriter) parents(img string) (bool, error) {
	dir := path.Dir(img)
	if dir == "/" {
		return true, nil
	}
	if isDir, done := lw.written[dir]; done {
		// Written as a directory, or as something else (a symlink, say), below which
		// nothing can be: its path would lead elsewhere, even out of the root.
		return isDir, nil
	}
	if ok, err := lw.parents(dir); !ok || err != nil {
		return ok, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(lw.host(dir), &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, &os.PathError{Op: "lstat", Path: lw.host(dir), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, nil
	}
	if _, err := lw.writePath(dir); err != nil {
		return false, err
	}
	return true, nil
}

// host returns the host path of img; callers have checked its ancestors are real
// directories, so the path walk cannot leave the root.
func (lw *layerWriter) host(img string) string {
	if lw.root == "/" {
		return img
	}
	return lw.root + img
}

// whiteout writes the entry that deletes img from lower layers.
func (lw *layerWriter) whiteout(img string) error {
	return lw.marker(path.Join(path.Dir(img), whiteoutPrefix+path.Base(img)))
}

// marker writes an empty whiteout or opaque entry at img. Their metadata carries
// nothing, so it is fixed: mode 0, root-owned, epoch mtime, as reproducible as can be.
func (lw *layerWriter) marker(img string) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: img[1:], ModTime: time.Unix(0, 0)}
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", img, err)
	}
	lw.files++
	return nil
}
