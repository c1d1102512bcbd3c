package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	paxXattrPrefix = "SCHILY.xattr."
	capabilityAttr = "security.capability"
)

// metadata applies a header's owner, mode, xattrs and (unless dir) times to host.
// fd is an open descriptor of host or -1; host's final component is never followed.
// The order matters: chown clears setuid/setgid and file capabilities, so the mode
// and xattrs come after it, and times come last since nothing after may touch them.
func (x *extractor) metadata(hdr *tar.Header, host string, fd int, dir bool) error {
	symlink := hdr.Typeflag == tar.TypeSymlink
	if x.cfg.ownership {
		var err error
		if fd >= 0 {
			err = unix.Fchown(fd, hdr.Uid, hdr.Gid)
		} else {
			err = unix.Lchown(host, hdr.Uid, hdr.Gid)
		}
		if err != nil && !(x.onlyRoot && errors.Is(err, unix.EINVAL)) {
			return &os.PathError{Op: "chown", Path: host, Err: err}
		}
	}
	if !symlink { // Linux has no mode on symlinks
		mode := uint32(hdr.Mode & 0o7777)
		var err error
		if fd >= 0 {
			err = unix.Fchmod(fd, mode)
		} else {
			err = unix.Fchmodat(unix.AT_FDCWD, host, mode, 0)
		}
		if err != nil {
			return &os.PathError{Op: "chmod", Path: host, Err: err}
		}
	}
	if err := setXattrs(hdr, host, fd); err != nil {
		return err
	}
	if dir {
		return nil
	}
	return setTimes(host, hdr.AccessTime, hdr.ModTime)
}

// setXattrs sets the header's SCHILY.xattr PAX records. Filesystems without xattr
// support (or unprivileged callers) may refuse other namespaces, which is tolerated;
// a refused security.capability would silently drop a binary's privileges, so it
// is an error.
func setXattrs(hdr *tar.Header, host string, fd int) error {
	for key, value := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, paxXattrPrefix)
		if !ok || name == "" {
			continue
		}
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, name, []byte(value), 0)
		} else {
			err = unix.Lsetxattr(host, name, []byte(value), 0)
		}
		if err == nil {
			continue
		}
		if name != capabilityAttr && (errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM)) {
			continue
		}
		return fmt.Errorf("setting xattr %s on %s: %w", name, host, err)
	}
	return nil
}

// setTimes sets host's access and modification times without following a final
// symlink. A zero access time takes the modification time, as tar rarely stores it.
func setTimes(host string, atime, mtime time.Time) error {
	if atime.IsZero() || atime.Before(mtime) {
		atime = mtime
	}
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: host, Err: err}
	}
	return nil
}

// timespec converts t, mapping the zero time to the Unix epoch rather than to a
// date before it that some filesystems reject.
func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{}
	}
	return unix.NsecToTimespec(t.UnixNano())
}
