package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ScanOption configures Scan.
type ScanOption func(*scanConfig)

type scanConfig struct {
	ignore      *Ignore
	mode        Mode
	noBirthTime bool
}

// WithoutBirthTime tells a directory replaced by a new one (rm -rf d; mkdir d) from
// the same directory by inode number alone. It is for overlay roots whose lower and
// upper layers share a filesystem: there a new directory cannot take the inode number
// of one still in a lower layer, while copying a lower directory up (when something
// below it changes) changes its birth time but keeps its number.
func WithoutBirthTime() ScanOption {
	return func(c *scanConfig) { c.noBirthTime = true }
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
	// slots numbers the paths of files (fileInfo.slot) so that a Diff can mark the
	// ones it met in a slice rather than a second map; it is the next free number.
	slots atomic.Int32
	// shared is set when files is also another Index's, as after a Diff that found
	// nothing: Update copies it before changing it.
	shared bool
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
	sum          string // sha256 of a regular file's content, ModeFull only
	slot         int32  // the path's number in its Index, unique within it
}

func (f *fileInfo) typ() uint32 { return f.mode & unix.S_IFMT }
func (f *fileInfo) isDir() bool { return f.typ() == unix.S_IFDIR }

// Scan records the tree under root.
func Scan(ctx context.Context, root string, opts ...ScanOption) (*Index, error) {
	var cfg scanConfig
	for _, o := range opts {
		o(&cfg)
	}
	return scan(ctx, root, cfg, 0)
}

// Len returns the number of paths recorded.
func (ix *Index) Len() int { return len(ix.files) }

// scan records the tree under root; sizeHint is how many paths it likely holds, so
// that the index is allocated once rather than grown while walking.
func scan(ctx context.Context, root string, cfg scanConfig, sizeHint int) (*Index, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	ix := &Index{cfg: cfg, files: make(map[string]fileInfo, sizeHint)}
	if cfg.ignore.Match("/") {
		return ix, nil
	}
	w := newWalker(ctx, cfg, ix.files, &ix.slots)
	w.walk(subdir{host: filepath.Clean(abs), img: "/"})
	return ix, w.wait()
}

// statAt records name inside the directory dirfd (host path dir); see statxAt.
func statAt(dirfd int, dir, name string, mode Mode) (fileInfo, bool, error) {
	return statxAt(dirfd, dir, append([]byte(name), 0), mode)
}

// statxAt records the NUL-terminated name inside the directory dirfd (host path
// dir). ok is false for paths not recorded: sockets and paths that vanished
// meanwhile. It is one statx per path in the default mode: the capability xattr
// needs no read of its own, since setting or removing it changes the ctime, which
// Diff compares.
func statxAt(dirfd int, dir string, name []byte, mode Mode) (fi fileInfo, ok bool, err error) {
	// statx rather than fstatat for the birth time: filesystems reuse a freed inode
	// number at once, so only ino plus btime tell a re-created directory apart.
	var st unix.Statx_t
	if err := statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fi, false, nil
		}
		return fi, false, &os.PathError{Op: "lstat", Path: joinHost(dir, string(name[:len(name)-1])), Err: err}
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
		fi.link, err = readlinkAt(dirfd, string(name[:len(name)-1]), int64(st.Size))
		if err != nil {
			return fi, false, &os.PathError{Op: "readlink", Path: joinHost(dir, string(name[:len(name)-1])), Err: err}
		}
	case unix.S_IFREG:
		if mode == ModeFull {
			base := string(name[:len(name)-1])
			fi.sum, err = hashFile(dirfd, base, joinHost(dir, base))
			if err != nil {
				return fi, false, err
			}
		}
	}
	return fi, true, nil
}

// statx is unix.Statx for a name that is already NUL-terminated, which saves
// copying every name of a walk into a fresh C string.
func statx(dirfd int, name []byte, flags, mask int, st *unix.Statx_t) error {
	_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])),
		uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(st)), 0)
	if errno != 0 {
		return errno
	}
	return nil
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
	return capabilityResult(host, buf[:], n, err)
}

// fileCapability is capability for an open file, which spares a path walk.
func fileCapability(fd int, host string) (string, error) {
	var buf [128]byte
	n, err := unix.Fgetxattr(fd, capabilityAttr, buf[:])
	return capabilityResult(host, buf[:], n, err)
}

func capabilityResult(host string, buf []byte, n int, err error) (string, error) {
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
