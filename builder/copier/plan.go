package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/snapshot"
)

// This file is COPY's fast path (Request.Plan): a regular file is recorded in the plan
// with the owner, mode and mtime the copy would give it, instead of being created in
// the build root. Every decision about the destination is still taken on the root, as
// the slow path takes it; the few places that look at a destination path ask the plan
// first, so a planned file stands in the way of later nodes exactly as a written one
// would (clear, isExistingDir, mkdirAll).

// checkPlan turns planning off for this call when one of its items would leave the
// plan's sources gone or out of date when the layer is written: a download (its
// temporary file is removed when Copy returns) or an archive ADD extracts (the
// extraction writes into the root on its own). The whole call is then written.
func (c *copier) checkPlan(items []item) error {
	if !c.planning {
		return nil
	}
	for _, it := range items {
		if it.remote {
			c.planning = false
			return nil
		}
		if it.info.IsDir() || !c.unpacks(it) {
			continue
		}
		archive, err := isArchive(it.host)
		if err != nil {
			return err
		}
		if archive {
			c.planning = false
			return nil
		}
	}
	return nil
}

// planFile plans the regular file n (owner uid:gid, mode) rather than writing it,
// when this call plans and nothing the plan cannot express is involved: a download,
// or a file capability (whose conversion and setting copyContent leaves to the kernel).
func (c *copier) planFile(n *node, uid, gid int, mode os.FileMode) (bool, error) {
	if !c.planning || n.remote {
		return false, nil
	}
	if _, err := unix.Lgetxattr(n.src, capabilityXattr, nil); err == nil {
		return false, nil // has a capability: written, as before
	} else if !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
		return false, fmt.Errorf("lgetxattr %s: %w", c.display(n.src), err)
	}
	f := &snapshot.PlannedFile{
		Source: n.src,
		Mode:   unixPerm(mode),
		UID:    uid,
		GID:    gid,
		// setTimes's truncation, so the entry's mtime is the one the file would have.
		MTime: n.info.ModTime().Truncate(time.Second).Unix(),
	}
	if err := c.touchParent(n.dst); err != nil {
		return false, err
	}
	c.req.Plan.Add(c.imagePath(n.dst), f)
	c.touch(n.dst)
	n.info = nil // nothing in the root to set the times of
	return true, nil
}

// touchParent gives the directory of dst the mtime that creating dst in it would:
// the layer has that directory's entry when the copy merged into it, with its mtime.
// Only whole seconds reach the layer, so one update per directory and second is
// enough.
func (c *copier) touchParent(dst string) error {
	dir, now := filepath.Dir(dst), time.Now().Unix()
	if dir == c.touchedDir && now == c.touchedSec {
		return nil
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return c.hostErr(&fs.PathError{Op: "utimes", Path: dir, Err: err})
	}
	c.touchedDir, c.touchedSec = dir, now
	return nil
}

// planLink makes n a hardlink to the planned file at first, as writeNode links a
// written one, and reports false when first was written (so n is linked for real).
func (c *copier) planLink(first string, n *node) (bool, error) {
	f, ok := c.req.Plan.Lookup(c.imagePath(first))
	if !ok {
		return false, nil
	}
	if err := c.touchParent(n.dst); err != nil {
		return false, err
	}
	c.req.Plan.Add(c.imagePath(n.dst), f)
	c.touch(n.dst)
	n.info = nil
	return true, nil
}

// isPlanned reports whether a file is planned at the host path host.
func (c *copier) isPlanned(host string) bool {
	if c.req.Plan.Len() == 0 {
		return false
	}
	_, ok := c.req.Plan.Lookup(c.imagePath(host))
	return ok
}

// unplan forgets a file planned at host (and with below, all planned under it):
// something else takes its place, as clear removes a written one.
func (c *copier) unplan(host string, below bool) {
	if c.req.Plan.Len() == 0 {
		return
	}
	c.req.Plan.Remove(c.imagePath(host), below)
}

// unixPerm returns the unix permission, set-id and sticky bits of mode, as os.Chmod
// sets them.
func unixPerm(mode os.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&os.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&os.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}
