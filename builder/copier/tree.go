package copier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileID identifies an inode, to recreate hardlinks between copied files.
type fileID struct{ dev, ino uint64 }

// tree copies one source directory's contents, like the classic builder's tar-and-untar
// of it: one hardlink table for the whole directory, directory times set last.
type tree struct {
	c     *copier
	owner *Owner            // nil: keep the source's owners
	links map[fileID]string // source inode -> first destination path written for it
	base  string            // the source item's path relative to the source root
	dirs  []*node           // directories written; finish sets their modes and times
}

// pendingDir is an excluded directory that holds re-included paths. The docker CLI
// leaves such a directory out of the context but sends the included paths, so the
// daemon creates it implicitly (0755, owned by root, mtime of extraction) when the
// first of them arrives; pendingDir does the same in the destination.
type pendingDir struct {
	parent *pendingDir
	dst    string
	done   bool
}

// copyChildren copies the entries of the source directory srcDir (rel in the source)
// into dstDir, which exists unless pending says it is still to be created. fresh says
// the root held nothing at dstDir before this copy: then it holds nothing below it
// either, and the entries need no look in the root before they are written (on an
// overlay root a lookup that finds nothing searches every layer).
func (t *tree) copyChildren(ctx context.Context, srcDir, rel, dstDir string, pending *pendingDir, fresh bool) error {
	entries, err := readDirStat(srcDir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", rel, unwrapPathError(err))
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		childRel := path.Join(rel, e.name)
		src := filepath.Join(srcDir, e.name)
		dst := filepath.Join(dstDir, e.name)
		if out, search := t.c.leftOut(t.base, childRel); out {
			if e.err == nil && e.info.IsDir() && search {
				p := &pendingDir{parent: pending, dst: dst}
				if err := t.copyChildren(ctx, src, childRel, dst, p, fresh); err != nil {
					return err
				}
			}
			continue
		}
		if err := t.materialize(pending); err != nil {
			return err
		}
		fi, err := e.info, e.err
		if err != nil {
			return fmt.Errorf("stat %s: %w", childRel, unwrapPathError(err))
		}
		n := &node{src: src, info: fi, dst: dst, owner: t.owner}
		found := false
		if fresh {
			t.c.unplan(dst, false)
		} else if found, err = t.c.clearFound(dst, fi.IsDir()); err != nil {
			return err
		}
		if err := t.c.writeNode(ctx, n, t.links); err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := n.setTimes(); err != nil {
				return t.c.hostErr(err)
			}
			continue
		}
		t.dirs = append(t.dirs, n)
		if err := t.copyChildren(ctx, src, childRel, dst, nil, !found); err != nil {
			return err
		}
	}
	return nil
}

// materialize creates the pending directories from the outermost in.
func (t *tree) materialize(p *pendingDir) error {
	if p == nil || p.done {
		return nil
	}
	if err := t.materialize(p.parent); err != nil {
		return err
	}
	if err := t.c.clear(p.dst, true); err != nil {
		return err
	}
	if err := os.Mkdir(p.dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return t.c.hostErr(err)
	}
	o := Owner{}
	if t.owner != nil {
		o = *t.owner
	}
	mode := os.FileMode(0o755)
	if t.c.req.Chmod != nil {
		mode = t.c.req.Chmod.dirMode()
	}
	if err := os.Lchown(p.dst, o.UID, o.GID); err != nil {
		return t.c.hostErr(err)
	}
	t.dirs = append(t.dirs, &node{dst: p.dst, dirMode: mode}) // no source times: now
	t.c.touch(p.dst)
	p.done = true
	return nil
}

// finish sets the modes and times of the directories written, now that nothing more
// is created inside them.
func (t *tree) finish() error {
	for _, n := range t.dirs {
		if err := os.Chmod(n.dst, n.dirMode); err != nil {
			return t.c.hostErr(err)
		}
		if err := n.setTimes(); err != nil {
			return t.c.hostErr(err)
		}
	}
	return nil
}

// node is one filesystem object to copy from src (lstat info) to dst.
type node struct {
	src   string
	info  fs.FileInfo
	dst   string
	owner *Owner // nil: the source's owner

	dirMode os.FileMode // a directory's mode, applied by tree.finish
	remote  bool        // a download: its temporary file goes before the layer is written
}

// writeNode creates n.dst (which clear has made room for, or which is an existing
// directory to merge into) with n's type, content, owner, security.capability and
// mode, in that order: chown clears setuid bits and file capabilities, so those are
// applied after it. Times, and a directory's mode, are left to the caller because they
// must be set after the directory's contents are written. A regular file that shares its inode with one already copied in
// links becomes a hardlink to it.
func (c *copier) writeNode(ctx context.Context, n *node, links map[fileID]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, ok := n.info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat information", n.src)
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if n.owner != nil {
		uid, gid = n.owner.UID, n.owner.GID
	}
	mode := n.info.Mode()
	if c.req.Chmod != nil {
		mode = mode.Type() | c.req.Chmod.apply(mode)
	}

	switch typ := n.info.Mode().Type(); {
	case typ == 0: // regular file
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		if links != nil && st.Nlink > 1 {
			if first, ok := links[id]; ok {
				if ok, err := c.planLink(first, n); ok || err != nil {
					return err
				}
				if err := os.Link(first, n.dst); err != nil {
					return c.hostErr(err)
				}
				c.touch(n.dst)
				n.info = nil // a hardlink shares its inode's times
				return nil
			}
			links[id] = n.dst
		}
		planned, err := c.planFile(n, uid, gid, mode)
		if err != nil {
			return err
		}
		if planned {
			return nil
		}
		if err := c.copyContent(n, uid, gid, mode); err != nil {
			return err
		}
	case typ == fs.ModeDir:
		if err := os.Mkdir(n.dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return c.hostErr(err)
		}
		// The mode waits for tree.finish: a read-only directory must still take its
		// contents when the copy does not run as root.
		if err := os.Lchown(n.dst, uid, gid); err != nil {
			return c.hostErr(err)
		}
		n.dirMode = mode
	case typ == fs.ModeSymlink:
		target, err := os.Readlink(n.src)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", c.display(n.src), unwrapPathError(err))
		}
		if err := os.Symlink(target, n.dst); err != nil {
			return c.hostErr(err)
		}
		if err := os.Lchown(n.dst, uid, gid); err != nil {
			return c.hostErr(err)
		}
	case typ == fs.ModeNamedPipe || typ == fs.ModeDevice || typ == fs.ModeDevice|fs.ModeCharDevice:
		if err := unix.Mknod(n.dst, unixType(typ)|0o600, int(st.Rdev)); err != nil {
			return c.hostErr(&fs.PathError{Op: "mknod", Path: n.dst, Err: err})
		}
		if err := c.setOwnerMode(n, uid, gid, mode); err != nil {
			return err
		}
	default:
		// Sockets (and anything stranger) cannot travel in a tar, so the classic
		// builder's tar-based copy never carries them.
		return fmt.Errorf("%s: cannot copy %s", c.display(n.src), n.info.Mode().Type())
	}
	c.touch(n.dst)
	return nil
}

// copyContent writes a regular file's bytes, owner, capability and mode. The new file
// is opened without following symlinks and exclusively: clear removed what was there.
func (c *copier) copyContent(n *node, uid, gid int, mode os.FileMode) error {
	in, err := os.OpenFile(n.src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", c.display(n.src), unwrapPathError(err))
	}
	defer in.Close()
	out, err := os.OpenFile(n.dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return c.hostErr(err)
	}
	// io.CopyBuffer lets *os.File use copy_file_range/sendfile; c.buf serves the
	// fallback, so a large file is never held in memory.
	_, err = io.CopyBuffer(out, in, c.buf)
	if err == nil {
		err = out.Chown(uid, gid)
	}
	if err == nil {
		err = copyCapability(n.src, out)
	}
	if err == nil {
		err = out.Chmod(mode)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c.hostErr(err)
	}
	return nil
}

// setOwnerMode applies owner and mode to a special file.
func (c *copier) setOwnerMode(n *node, uid, gid int, mode os.FileMode) error {
	if err := os.Lchown(n.dst, uid, gid); err != nil {
		return c.hostErr(err)
	}
	if err := os.Chmod(n.dst, mode); err != nil {
		return c.hostErr(err)
	}
	return nil
}

// setTimes gives n.dst the source's mtime, truncated to the second as the classic
// builder's tar headers do, and the same atime. Symlinks get their own times.
func (n *node) setTimes() error {
	if n.info == nil {
		return nil
	}
	mtime := n.info.ModTime().Truncate(time.Second)
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, n.dst, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: n.dst, Err: err}
	}
	return nil
}

// unixType maps a special file's Go type bits to mknod's.
func unixType(typ fs.FileMode) uint32 {
	switch {
	case typ&fs.ModeNamedPipe != 0:
		return unix.S_IFIFO
	case typ&fs.ModeCharDevice != 0:
		return unix.S_IFCHR
	}
	return unix.S_IFBLK
}
