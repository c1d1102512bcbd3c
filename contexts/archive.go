package contexts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"

	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/ctxio"
	"github.com/kiln-build/kiln/nettimeout"
)

// ErrLimitExceeded marks an archive larger than the limits FromArchive was given. A
// front door maps it to "request too large" rather than to a server error.
var ErrLimitExceeded = errors.New("build context too large")

// ArchiveOption configures FromArchive.
type ArchiveOption func(*archiveSettings)

type archiveSettings struct {
	maxBytes   int64 // total size of the regular files' contents; 0: unlimited
	maxEntries int   // number of tar entries; 0: unlimited
	maxRatio   int64 // uncompressed bytes per compressed byte; 0: unlimited

	client     *http.Client      // FromURL; nil: one held to net
	net        nettimeout.Limits // every network wait: FromURL, FromGit, FromBucket
	progress   func()            // FromGit: reports each write to its watchdog
	closed     *atomic.Bool      // FromGit: set when an abandoned clone must write no more
	dockerfile string            // FromURL: the name of a plain-text download

	memDir   string // WithMemoryFirst: where extraction starts
	memBytes int64  // WithMemoryFirst: how much may stay there
}

// WithMaxBytes stops the extraction with ErrLimitExceeded once the archive's files
// hold more than n bytes (uncompressed). It is what stops a decompression bomb: a
// small gzip body that expands to terabytes is cut off at n, before it fills the disk.
func WithMaxBytes(n int64) ArchiveOption {
	return func(s *archiveSettings) { s.maxBytes = n }
}

// WithNetLimits holds the fetches (FromURL, FromGit, FromBucket) to these connect
// and stall limits; without it they get nettimeout's defaults.
func WithNetLimits(l nettimeout.Limits) ArchiveOption {
	return func(s *archiveSettings) { s.net = l }
}

// WithMaxEntries stops the extraction with ErrLimitExceeded after n entries, so an
// archive of millions of empty files cannot exhaust the inodes of the state volume.
func WithMaxEntries(n int) ArchiveOption {
	return func(s *archiveSettings) { s.maxEntries = n }
}

// WithMaxRatio stops the extraction with ErrLimitExceeded once a compressed archive
// has expanded n times its compressed size (past compression.DefaultRatioFloor): a
// decompression bomb fails after a few megabytes rather than at WithMaxBytes.
func WithMaxRatio(n int64) ArchiveOption {
	return func(s *archiveSettings) { s.maxRatio = n }
}

// FromArchive extracts a build context sent as a tar stream (the body of Docker's
// POST /build) into dir, which becomes the Context's Dir, and reads its .dockerignore.
//
// The stream may be plain or compressed with gzip, bzip2, xz or zstd: the docker CLI
// sends `--compress` bodies as application/x-tar without a Content-Encoding, so the
// compression is sniffed from the magic bytes, as dockerd does.
//
// Extraction is path-safe: names are made relative ("/etc/x" lands at dir/etc/x), an
// entry whose name climbs out with ".." is rejected, and every parent directory is
// resolved inside dir, so a symlink in the archive (which may point anywhere, and is
// kept verbatim for COPY) is never followed out of dir. Only regular files,
// directories, symlinks and hard links are created; FIFOs and devices, which the CLI
// may send, are skipped. Modes and modification times are kept, ownership is not (COPY
// chowns to root or --chown anyway).
//
// A tar without end-of-archive blocks is accepted: `docker build -f - .` sends one
// (docs/server.md, "A Dockerfile from stdin or outside the context"). dir should be
// empty; it is created if missing.
func FromArchive(ctx context.Context, r io.Reader, dir string, opts ...ArchiveOption) (*Context, error) {
	var s archiveSettings
	for _, o := range opts {
		o(&s)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("context directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("context directory: %w", err)
	}
	plain, _, err := compression.NewLimitedReader(ctxio.NewReader(ctx, r), compression.Limits{
		MaxRatio: s.maxRatio, What: "the build context", RatioSetting: "--max-context-ratio",
	})
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	defer plain.Close()
	x := &extractor{root: abs, settings: s, dirs: map[string]dirMeta{}}
	if s.memDir != "" {
		if x.root, err = filepath.Abs(s.memDir); err != nil {
			return nil, fmt.Errorf("context directory %q: %w", s.memDir, err)
		}
		if err := os.MkdirAll(x.root, 0o755); err != nil {
			return nil, fmt.Errorf("context directory: %w", err)
		}
		x.disk = abs
	}
	if err := x.extract(ctx, plain); err != nil {
		if errors.Is(err, compression.ErrBomb) && !errors.Is(err, ErrLimitExceeded) {
			err = fmt.Errorf("%w: %w", ErrLimitExceeded, err)
		}
		return nil, err
	}
	c := &Context{Dir: x.root}
	if err := c.readIgnoreInRoot(); err != nil {
		return nil, err
	}
	return c, nil
}

// readIgnoreInRoot reads .dockerignore resolving it inside Dir: an uploaded context
// may make it a symlink to a host file, whose content must never be read.
func (c *Context) readIgnoreInRoot() error {
	f, err := pathrs.OpenInRoot(c.Dir, ".dockerignore")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("reading .dockerignore: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil // a directory or a device: nothing to ignore
	}
	rf, err := pathrs.Reopen(f, unix.O_RDONLY) // OpenInRoot's handle is O_PATH
	if err != nil {
		return fmt.Errorf("reading .dockerignore: %w", err)
	}
	defer rf.Close()
	patterns, err := ignorefile.ReadAll(rf)
	if err != nil {
		return fmt.Errorf("reading .dockerignore: %w", err)
	}
	return c.setPatterns(patterns)
}
