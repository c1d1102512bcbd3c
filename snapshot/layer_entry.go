package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// writePath writes the tar entry of img from the tree, reporting whether it is a
// directory. A path that vanished, or a socket, writes nothing.
func (lw *layerWriter) writePath(img string) (isDir bool, err error) {
	if f, ok := lw.cfg.plan.Lookup(img); ok {
		return false, lw.writePlanned(img, f)
	}
	host := lw.host(img)
	if r := lw.prefetch.take(img); r != nil { // a regular file, read ahead
		defer lw.prefetch.release(r)
		return false, lw.writeFileFrom(img, host, &r.st, r.caps, r.content(lw.tw))
	}
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		// ENOTDIR: a later source of the same COPY replaced an ancestor by a file.
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, &os.PathError{Op: "lstat", Path: host, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return false, lw.writeFile(img, host)
	}
	hdr := lw.header(img, &st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		isDir = true
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = readlinkAt(unix.AT_FDCWD, host, st.Size); err != nil {
			return false, &os.PathError{Op: "readlink", Path: host, Err: err}
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		hdr.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return false, nil // sockets are runtime state, never image content
	}
	if err := lw.writeHeader(img, hdr); err != nil {
		return false, err
	}
	return isDir, nil
}

// header returns the fields every entry shares, the way Docker writes them:
// relative name, permission and set-id bits only, numeric owner without names,
// mtime in whole seconds and no atime/ctime.
func (lw *layerWriter) header(img string, st *unix.Stat_t) *tar.Header {
	mtime := time.Unix(st.Mtim.Sec, 0)
	if lw.cfg.reproducible {
		mtime = time.Unix(0, 0)
	}
	return &tar.Header{
		Name:    img[1:],
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime,
	}
}

// writeFile writes a regular file, or a hardlink to the first name this layer
// gave its inode. The header comes from fstat of the open file so that it matches
// the content copied.
func (lw *layerWriter) writeFile(img, host string) error {
	// A bare descriptor rather than an os.File, whose setup costs two more
	// syscalls per file (poller registration) for a file read once, sequentially.
	fd, err := unix.Open(host, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "open", Path: host, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: host, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced since lstat by something else; a later walk sees it
	}
	caps, err := fileCapability(fd, host)
	if err != nil {
		return err
	}
	return lw.writeFileFrom(img, host, &st, caps, func() (int64, error) { return lw.copyFile(fd, host, st.Size) })
}

// writeFileFrom writes the entry of the regular file img of the root, whose stat is st
// and capability caps, taking its content from content (the file read now, or read
// ahead), or a hardlink to the first name this layer gave its inode.
func (lw *layerWriter) writeFileFrom(img, host string, st *unix.Stat_t, caps string, content func() (int64, error)) error {
	hdr := lw.header(img, st)
	if st.Nlink > 1 {
		key := inodeKey{dev: uint64(st.Dev), ino: st.Ino}
		if first, ok := lw.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			return lw.writeHeader(img, hdr)
		}
		lw.links[key] = hdr.Name
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size
	if caps != "" {
		hdr.PAXRecords = map[string]string{paxXattrPrefix + capabilityAttr: caps}
	}
	if err := lw.writeHeader(img, hdr); err != nil {
		return err
	}
	n, err := content()
	if err != nil {
		return fmt.Errorf("writing %s: %w", img, err)
	}
	if n != st.Size {
		return fmt.Errorf("writing %s: file shrank from %d to %d bytes while being read", img, st.Size, n)
	}
	return nil
}

// copyFile copies up to size bytes of the open file fd into the tar through the
// writer's one buffer, and returns how many there were.
func (lw *layerWriter) copyFile(fd int, host string, size int64) (int64, error) {
	var done int64
	for done < size {
		chunk := lw.buf
		if rest := size - done; rest < int64(len(chunk)) {
			chunk = chunk[:rest]
		}
		n, err := unix.Read(fd, chunk)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "read", Path: host, Err: err}
		}
		if n == 0 {
			return done, nil
		}
		if _, err := lw.tw.Write(chunk[:n]); err != nil {
			return done, err
		}
		done += int64(n)
	}
	return done, nil
}

func (lw *layerWriter) writeHeader(img string, hdr *tar.Header) error {
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", img, err)
	}
	lw.written[img] = hdr.Typeflag == tar.TypeDir
	lw.files++
	switch hdr.Typeflag {
	case tar.TypeReg:
		lw.content += hdr.Size
	case tar.TypeSymlink:
		lw.content += int64(len(hdr.Linkname))
	}
	return nil
}
