package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// ScanOption configures Scan.
type ScanOption func(*scanConfig)

type scanConfig struct {
	ignore *Ignore
	mode   Mode
}

// WithScanIgnore leaves ignored paths out of the index and so out of every Diff.
func WithScanIgnore(ig *Ignore) ScanOption {
	return func(c *scanConfig) { c.ignore = ig }
}

// WithMode selects how Diff decides that a path changed; the default is ModeRedo.
func WithMode(m Mode) ScanOption {
	return func(c *scanConfig) { c.mode = m }
}

// Index records the metadata of every path of a tree, keyed by image path ("/a/b"),
// so that a later Diff can tell what changed. The root directory itself is not
// recorded: it is never part of a layer.
type Index struct {
	cfg   scanConfig
	files map[string]fileInfo
}

// fileInfo is what Diff compares for one path.
type fileInfo struct {
	mode         uint32 // st_mode: type and permission bits
	uid, gid     uint32
	nlink        uint64
	size         int64
	mtime, ctime int64 // nanoseconds since the epoch
	btime        int64 // birth time in nanoseconds, 0 where the filesystem has none
	ino, dev     uint64
	link         string // symlink target
	caps         string // security.capability xattr of regular files
	sum          string // sha256 of a regular file's content, ModeFull only
}

func (f *fileInfo) typ() uint32 { return f.mode & unix.S_IFMT }
func (f *fileInfo) isDir() bool { return f.typ() == unix.S_IFDIR }

// Scan records the tree under root.
func Scan(ctx context.Context, root string, opts ...ScanOption) (*Index, error) {
	var cfg scanConfig
	for _, o := range opts {
		o(&cfg)
	}
	return scan(ctx, root, cfg)
}

// Len returns the number of paths recorded.
func (ix *Index) Len() int { return len(ix.files) }

func scan(ctx context.Context, root string, cfg scanConfig) (*Index, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	ix := &Index{cfg: cfg, files: make(map[string]fileInfo)}
	if cfg.ignore.Match("/") {
		return ix, nil
	}
	w := newWalker(ctx, cfg, ix.files)
	w.walk(filepath.Clean(abs), "/")
	return ix, w.wait()
}

// walker walks a tree with a bounded number of goroutines, one directory at a time
// each, storing what it finds in files.
type walker struct {
	ctx  context.Context
	cfg  scanConfig
	sem  chan struct{} // one token per extra goroutine
	wg   sync.WaitGroup
	mu   sync.Mutex // guards files and err
	err  error
	done chan struct{} // closed on the first error
	once sync.Once

	files map[string]fileInfo
}

func newWalker(ctx context.Context, cfg scanConfig, files map[string]fileInfo) *walker {
	return &walker{
		ctx:   ctx,
		cfg:   cfg,
		sem:   make(chan struct{}, runtime.NumCPU()),
		done:  make(chan struct{}),
		files: files,
	}
}

// walk records the children of the directory host (image path img), handing
// subdirectories to a new goroutine while one may start and walking them inline
// otherwise, so the total stays bounded without a queue.
func (w *walker) walk(host, img string) {
	w.walkWith(host, img, make([]byte, direntBufferSize))
}

// walkWith is walk with the goroutine's getdents buffer.
func (w *walker) walkWith(host, img string, buf []byte) {
	if w.stopped() {
		return
	}
	subdirs, err := w.readDir(host, img, buf)
	if err != nil {
		w.fail(err)
		return
	}
	for _, sub := range subdirs {
		select {
		case w.sem <- struct{}{}:
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				w.walk(sub.host, sub.img)
				<-w.sem
			}()
		default:
			w.walkWith(sub.host, sub.img, buf)
		}
	}
}

func (w *walker) stopped() bool {
	select {
	case <-w.done:
		return true
	default:
	}
	if err := w.ctx.Err(); err != nil {
		w.fail(err)
		return true
	}
	return false
}

func (w *walker) fail(err error) {
	w.once.Do(func() {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		close(w.done)
	})
}

// wait waits for all goroutines and returns the first error.
func (w *walker) wait() error {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

type subdir struct{ host, img string }

// direntBufferSize is the getdents buffer of each walking goroutine.
const direntBufferSize = 32 << 10

// readDirNames lists the open directory fd with getdents directly: os.File would
// cost extra fcntl and poller syscalls per directory for nothing.
func readDirNames(fd int, host string, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return nil, &os.PathError{Op: "getdents", Path: host, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

type record struct {
	img string
	fi  fileInfo
}

// readDir stats the children of one directory through its descriptor (shorter
// kernel path walks than full paths) and stores them under one lock acquisition.
func (w *walker) readDir(host, img string, buf []byte) ([]subdir, error) {
	fd, err := unix.Open(host, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil // removed or replaced while walking
		}
		return nil, &os.PathError{Op: "open", Path: host, Err: err}
	}
	defer unix.Close(fd)
	names, err := readDirNames(fd, host, buf)
	if err != nil {
		return nil, err
	}
	checkIgnore := w.cfg.ignore.within(img) || w.cfg.ignore.Match(img)
	recs := make([]record, 0, len(names))
	var subdirs []subdir
	for _, name := range names {
		cimg := joinImage(img, name)
		if checkIgnore && w.cfg.ignore.Match(cimg) {
			continue
		}
		fi, ok, err := statAt(fd, host, name, w.cfg.mode)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		recs = append(recs, record{img: cimg, fi: fi})
		if fi.isDir() {
			subdirs = append(subdirs, subdir{host: joinHost(host, name), img: cimg})
		}
	}
	w.mu.Lock()
	for _, r := range recs {
		w.files[r.img] = r.fi
	}
	w.mu.Unlock()
	return subdirs, nil
}

// statAt records name inside the directory dirfd (host path dir). ok is false for
// paths not recorded: sockets and paths that vanished meanwhile.
func statAt(dirfd int, dir, name string, mode Mode) (fi fileInfo, ok bool, err error) {
	// statx rather than fstatat for the birth time: filesystems reuse a freed inode
	// number at once, so only ino plus btime tell a re-created directory apart.
	var st unix.Statx_t
	if err := unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fi, false, nil
		}
		return fi, false, &os.PathError{Op: "lstat", Path: joinHost(dir, name), Err: err}
	}
	fi = fileInfo{
		mode:  uint32(st.Mode),
		uid:   st.Uid,
		gid:   st.Gid,
		nlink: uint64(st.Nlink),
		size:  int64(st.Size),
		mtime: nanos(st.Mtime),
		ctime: nanos(st.Ctime),
		ino:   st.Ino,
		dev:   unix.Mkdev(st.Dev_major, st.Dev_minor),
	}
	if st.Mask&unix.STATX_BTIME != 0 {
		fi.btime = nanos(st.Btime)
	}
	switch fi.typ() {
	case unix.S_IFSOCK:
		return fi, false, nil
	case unix.S_IFLNK:
		fi.link, err = readlinkAt(dirfd, name, int64(st.Size))
		if err != nil {
			return fi, false, &os.PathError{Op: "readlink", Path: joinHost(dir, name), Err: err}
		}
	case unix.S_IFREG:
		if mode == ModeTime {
			break
		}
		host := joinHost(dir, name)
		fi.caps, err = capability(host)
		if err != nil {
			return fi, false, err
		}
		if mode == ModeFull {
			fi.sum, err = hashFile(dirfd, name, host)
			if err != nil {
				return fi, false, err
			}
		}
	}
	return fi, true, nil
}

func nanos(t unix.StatxTimestamp) int64 {
	return t.Sec*1e9 + int64(t.Nsec)
}

// readlinkAt reads a symlink's target; size is its lstat size, a hint.
func readlinkAt(dirfd int, name string, size int64) (string, error) {
	n := int(size) + 1
	if n < 64 {
		n = 64
	}
	for {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
		n *= 2 // the link grew since lstat
	}
}

// capability returns host's security.capability xattr, "" when it has none.
func capability(host string) (string, error) {
	var buf [128]byte // a v3 capability is 24 bytes
	n, err := unix.Lgetxattr(host, capabilityAttr, buf[:])
	switch {
	case err == nil:
		return string(buf[:n]), nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ENOENT):
		return "", nil
	case errors.Is(err, unix.ERANGE):
		return "", fmt.Errorf("reading %s of %s: value too large", capabilityAttr, host)
	}
	return "", &os.PathError{Op: "getxattr", Path: host, Err: err}
}

// hashFile returns the sha256 of a regular file's content.
func hashFile(dirfd int, name, host string) (string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: host, Err: err}
	}
	f := os.NewFile(uintptr(fd), host)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", host, err)
	}
	return string(h.Sum(nil)), nil
}
