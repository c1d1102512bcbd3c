package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// copyBufferSize is the one buffer an Extract or WriteLayer call copies file
	// contents through; large enough to keep syscalls few, small enough to be cheap.
	copyBufferSize = 256 << 10
)

// ExtractOption configures Extract.
type ExtractOption func(*extractConfig)

type extractConfig struct {
	ignore    *Ignore
	whiteouts bool
	ownership bool
	touched   func(imagePath string)
	// skippedNode hears of device nodes mknod refused.
	skippedNode func(imagePath string)
}

// WithIgnore skips entries under ignored paths; such paths are never written over or
// deleted, not even by whiteouts or opaque directories.
func WithIgnore(ig *Ignore) ExtractOption {
	return func(c *extractConfig) { c.ignore = ig }
}

// WithSkippedNode calls skipped with the image path of every device node the kernel
// refused to create (mknod EPERM: a user namespace or an unprivileged container).
func WithSkippedNode(skipped func(imagePath string)) ExtractOption {
	return func(c *extractConfig) { c.skippedNode = skipped }
}

// WithWhiteouts selects whether ".wh." entries are whiteouts (the default, for image
// layers) or literal file names (for ADD of a local tar archive).
func WithWhiteouts(on bool) ExtractOption {
	return func(c *extractConfig) { c.whiteouts = on }
}

// WithOwnership selects whether entries are chowned to their uid/gid. The default is
// on when running as root, since nobody else may chown.
func WithOwnership(on bool) ExtractOption {
	return func(c *extractConfig) { c.ownership = on }
}

// WithTouched registers fn to be called with the image path of every path written
// (not deleted), with symlinks in its parents resolved, e.g. "/usr/bin/x". COPY and
// ADD use it to snapshot exactly what they wrote.
func WithTouched(fn func(imagePath string)) ExtractOption {
	return func(c *extractConfig) { c.touched = fn }
}

// Extract applies one uncompressed tar stream to root, as if the tar's "/" were the
// image path dest (usually "/"). root is a host directory. Writes are confined to
// root: entry names may not climb above the tar's root, and symlinks met on the way
// are resolved as if root were "/".
func Extract(ctx context.Context, root, dest string, r io.Reader, opts ...ExtractOption) error {
	cfg := extractConfig{whiteouts: true, ownership: os.Geteuid() == 0}
	for _, o := range opts {
		o(&cfg)
	}
	rfs, err := newRootFS(root)
	if err != nil {
		return err
	}
	x := &extractor{
		cfg:      cfg,
		fs:       rfs,
		dest:     path.Clean("/" + dest),
		written:  map[string]struct{}{},
		dirAt:    map[string]int{},
		buf:      make([]byte, copyBufferSize),
		root:     os.Geteuid() == 0,
		onlyRoot: onlyRootMapped(),
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if err := x.entry(ctx, hdr, tr); err != nil {
			return err
		}
	}
	return x.finishDirs()
}

// extractor is the state of one Extract call.
type extractor struct {
	cfg  extractConfig
	fs   *rootFS
	dest string
	// written holds the (resolved) image paths this stream wrote, and their
	// ancestors, so an opaque marker spares the stream's own entries.
	written map[string]struct{}
	dirs    []pendingDir
	dirAt   map[string]int // img -> index in dirs, so a repeated header wins
	buf     []byte
	root    bool // root bypasses permission checks; others need writable dirs
	// onlyRoot is set in a user namespace mapping no uid but 0 (rootless kiln without
	// a subuid range): entries owned by others stay owned by 0.
	onlyRoot bool
}

// onlyRootMapped reports whether this process's user namespace maps uid 0 alone.
func onlyRootMapped() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[2] == "1"
}

// pendingDir is a directory whose mode and times are applied after all entries,
// since writing a child would bump its mtime again.
type pendingDir struct {
	img          string // unresolved image path, a key of rootFS.dirs
	mode         uint32
	atime, mtime time.Time
}

// entry applies one tar header.
func (x *extractor) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	rel, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	img := path.Join(x.dest, rel)
	base := path.Base(rel)
	if x.cfg.whiteouts && strings.HasPrefix(base, whiteoutPrefix) {
		if base == opaqueMarker {
			return x.opaque(ctx, path.Dir(img), hdr.Name)
		}
		return x.whiteout(ctx, path.Join(path.Dir(img), base[len(whiteoutPrefix):]), hdr.Name)
	}
	if x.cfg.ignore.Match(img) {
		return nil
	}
	if rel == "." {
		return x.rootEntry(hdr)
	}
	parent, err := x.fs.dir(path.Dir(img), true)
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	host := joinHost(parent, path.Base(img))
	resolved := x.fs.imagePath(host)
	if x.cfg.ignore.Match(resolved) {
		return nil // reached through a symlink into an ignored path
	}
	wrote, err := x.write(ctx, hdr, r, img, host, resolved)
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	if wrote {
		x.markWritten(resolved)
		if x.cfg.touched != nil {
			x.cfg.touched(resolved)
		}
	}
	return nil
}

// write creates one entry at host and reports whether anything was written.
func (x *extractor) write(ctx context.Context, hdr *tar.Header, r io.Reader, img, host, resolved string) (bool, error) {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return true, x.writeDir(ctx, hdr, img, host, resolved)
	case tar.TypeReg: // tar.Reader already maps the old TypeRegA to TypeReg or TypeDir
		return true, x.writeFile(ctx, hdr, r, host, resolved)
	case tar.TypeSymlink:
		if err := x.clear(ctx, host, resolved); err != nil {
			return false, err
		}
		if err := unix.Symlink(hdr.Linkname, host); err != nil {
			return false, &os.PathError{Op: "symlink", Path: host, Err: err}
		}
		return true, x.metadata(hdr, host, -1, false)
	case tar.TypeLink:
		return true, x.writeLink(ctx, hdr, host, resolved)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.writeNode(ctx, hdr, host, resolved)
	case tar.TypeXGlobalHeader:
		return false, nil
	}
	return false, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
}

// rootEntry applies a directory header naming the tar's root to dest.
func (x *extractor) rootEntry(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("tar entry %q: only a directory may name the root", hdr.Name)
	}
	// The destination keeps its own metadata, as Docker's untar does: the build root's
	// directory is not part of any image, and ADD of an archive into /dir leaves /dir
	// as ADD created it (root-owned), whatever the archive's "./" entry says.
	if _, err := x.fs.dir(x.dest, true); err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	return nil
}

// clear removes whatever exists at host so that a non-directory can be created.
func (x *extractor) clear(ctx context.Context, host, resolved string) error {
	gone, wasDir, err := removeTree(ctx, host, resolved, x.cfg.ignore)
	if wasDir {
		x.fs.forget()
	}
	if err != nil {
		return err
	}
	if !gone {
		return fmt.Errorf("cannot replace %s: it holds ignored paths", resolved)
	}
	return nil
}

func (x *extractor) writeDir(ctx context.Context, hdr *tar.Header, img, host, resolved string) error {
	var st unix.Stat_t
	err := unix.Lstat(host, &st)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		// Keep the directory and its contents; only metadata changes.
	case err == nil || errors.Is(err, unix.ENOENT):
		if err == nil {
			if err := x.clear(ctx, host, resolved); err != nil {
				return err
			}
		}
		if err := unix.Mkdir(host, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: host, Err: err}
		}
	default:
		return &os.PathError{Op: "lstat", Path: host, Err: err}
	}
	x.fs.dirs[img] = host
	return x.dirMetadata(hdr, img, host)
}

// dirMetadata applies a directory's owner and xattrs now and queues its mode and
// times. Mode is applied now too as root; others keep the directory writable until
// the end so later entries can be created inside it.
func (x *extractor) dirMetadata(hdr *tar.Header, img, host string) error {
	mode := uint32(hdr.Mode & 0o7777)
	if x.root {
		if err := x.metadata(hdr, host, -1, true); err != nil {
			return err
		}
	} else {
		tmp := *hdr
		tmp.Mode |= 0o700
		if err := x.metadata(&tmp, host, -1, true); err != nil {
			return err
		}
	}
	d := pendingDir{img: img, mode: mode, atime: hdr.AccessTime, mtime: hdr.ModTime}
	if i, ok := x.dirAt[img]; ok {
		x.dirs[i] = d
		return nil
	}
	x.dirAt[img] = len(x.dirs)
	x.dirs = append(x.dirs, d)
	return nil
}

func (x *extractor) writeFile(ctx context.Context, hdr *tar.Header, r io.Reader, host, resolved string) error {
	if err := x.clear(ctx, host, resolved); err != nil {
		return err
	}
	fd, err := unix.Open(host, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: host, Err: err}
	}
	f := os.NewFile(uintptr(fd), host)
	defer f.Close()
	// Hide f's ReadFrom: for a non-file source it would fall back to io.Copy with a
	// fresh 32 KiB buffer per file instead of the extractor's buffer.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, r, x.buf); err != nil {
		return fmt.Errorf("writing %s: %w", host, err)
	}
	if err := x.metadata(hdr, host, fd, false); err != nil {
		return err
	}
	return f.Close()
}

func (x *extractor) writeLink(ctx context.Context, hdr *tar.Header, host, resolved string) error {
	trel, err := cleanEntryName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	timg := path.Join(x.dest, trel)
	tparent, err := x.fs.dir(path.Dir(timg), false)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	target := joinHost(tparent, path.Base(timg))
	if target == host {
		return nil // a link to itself: the file is already there
	}
	if x.cfg.ignore.Match(x.fs.imagePath(target)) {
		return fmt.Errorf("hardlink target %q is ignored", hdr.Linkname)
	}
	if err := x.clear(ctx, host, resolved); err != nil {
		return err
	}
	// Flags 0: linkat links a symlink target itself rather than what it points to.
	if err := unix.Linkat(unix.AT_FDCWD, target, unix.AT_FDCWD, host, 0); err != nil {
		return &os.LinkError{Op: "link", Old: target, New: host, Err: err}
	}
	return nil
}

// writeNode creates a device or FIFO. An EPERM from mknod (an unprivileged
// container) skips the entry, as Docker does in rootless mode.
func (x *extractor) writeNode(ctx context.Context, hdr *tar.Header, host, resolved string) (bool, error) {
	if err := x.clear(ctx, host, resolved); err != nil {
		return false, err
	}
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknod(host, mode, int(dev)); err != nil {
		if errors.Is(err, unix.EPERM) {
			if x.cfg.skippedNode != nil {
				x.cfg.skippedNode(path.Clean("/" + hdr.Name))
			}
			return false, nil
		}
		return false, &os.PathError{Op: "mknod", Path: host, Err: err}
	}
	return true, x.metadata(hdr, host, -1, false)
}

// markWritten records img and its ancestors as written by this stream.
func (x *extractor) markWritten(img string) {
	for {
		if _, ok := x.written[img]; ok {
			return
		}
		x.written[img] = struct{}{}
		if img == "/" {
			return
		}
		img = path.Dir(img)
	}
}

// finishDirs applies the queued directory modes and times, re-resolving each
// directory since later entries may have replaced its parents. Children go first
// (the reverse of stream order) so a parent made read-only last cannot block them.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		host, err := x.fs.dir(d.img, false)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			continue // removed or replaced later in the stream
		}
		if err != nil {
			return err
		}
		if !x.root {
			if err := unix.Fchmodat(unix.AT_FDCWD, host, d.mode, 0); err != nil {
				return &os.PathError{Op: "chmod", Path: host, Err: err}
			}
		}
		if err := setTimes(host, d.atime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}
