package copier

import (
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirEntry is one entry of a directory read by readDirStat: its name and lstat.
type dirEntry struct {
	name string
	info fs.FileInfo
	err  error // the entry's lstat failed (it vanished, ...)
}

// readDirStat lists dir in name order, as os.ReadDir does, with each entry's lstat.
// Each lstat is relative to the open directory, so the kernel walks one path
// component instead of the whole path: the walks of COPY and of its cache key lstat
// every file of the source.
func readDirStat(dir string) ([]dirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	fd := int(f.Fd())
	out := make([]dirEntry, len(names))
	for i, name := range names {
		out[i].name = name
		var u unix.Stat_t
		for {
			err = unix.Fstatat(fd, name, &u, unix.AT_SYMLINK_NOFOLLOW)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			out[i].err = &fs.PathError{Op: "lstat", Path: dir + "/" + name, Err: err}
			continue
		}
		out[i].info = &statInfo{name: name, st: sysStat(&u)}
	}
	return out, nil
}

// statInfo is an fs.FileInfo made from a stat, as os.Lstat's.
type statInfo struct {
	name string
	st   *syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return s.st }

// Mode converts the stat's mode as package os does.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// sysStat converts a stat from package unix to package syscall's type, which the
// copier's readers of FileInfo.Sys expect (os.Lstat's).
func sysStat(u *unix.Stat_t) *syscall.Stat_t {
	return &syscall.Stat_t{
		Dev: u.Dev, Ino: u.Ino, Nlink: u.Nlink, Mode: u.Mode, Uid: u.Uid, Gid: u.Gid,
		Rdev: u.Rdev, Size: u.Size, Blksize: u.Blksize, Blocks: u.Blocks,
		Atim: syscall.Timespec(u.Atim), Mtim: syscall.Timespec(u.Mtim), Ctim: syscall.Timespec(u.Ctim),
	}
}
