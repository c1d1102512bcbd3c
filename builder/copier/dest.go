package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// copyItem copies one resolved source to dest (an image path, trailing slash kept),
// following the classic builder's performCopyForInfo: a directory's contents go into
// dest; for ADD, a local tar archive is extracted into dest; any other source lands
// at dest, or inside it when dest ends with "/" or is an existing directory.
func (c *copier) copyItem(ctx context.Context, it item, dest string) error {
	// Symlinks in the destination are followed inside the root, the last one too:
	// COPY to /bin/sh where /bin/sh -> dash writes /bin/dash, as the classic builder does.
	destHost, err := securejoin.SecureJoin(c.dstRoot, dest)
	if err != nil {
		return fmt.Errorf("resolving destination %s: %w", dest, err)
	}
	if it.info.IsDir() {
		if err := c.copyDir(ctx, it, destHost); err != nil {
			return fmt.Errorf("failed to copy directory: %w", err)
		}
		return nil
	}
	if c.unpacks(it) {
		archive, err := isArchive(it.host)
		if err != nil {
			return err
		}
		if archive {
			return c.extract(ctx, it, destHost)
		}
	}

	isDir, err := c.isExistingDir(destHost)
	if err != nil {
		return err
	}
	if isDir || strings.HasSuffix(dest, "/") {
		if !usableName(it.name) {
			return fmt.Errorf("cannot name %q inside directory %s", it.name, c.imagePath(destHost))
		}
		destHost = filepath.Join(destHost, it.name)
	}
	if err := c.copyFile(ctx, it, destHost); err != nil {
		return fmt.Errorf("failed to copy file: %w", err)
	}
	return nil
}

// unpacks reports whether it, if it is a tar archive, is extracted rather than copied:
// ADD extracts local archives unless --unpack=false, and downloads with --unpack=true.
func (c *copier) unpacks(it item) bool {
	switch {
	case !c.req.Add:
		return false
	case c.req.Unpack != nil:
		return *c.req.Unpack
	}
	return !it.remote
}

// copyFile copies a single non-directory source to the host path target, creating its
// missing parents owned like the file (the classic builder's MkdirAllAndChown with
// only-new) and replacing whatever target was, even a directory.
func (c *copier) copyFile(ctx context.Context, it item, target string) error {
	own := c.identity(it)
	parentOwner := Owner{}
	if own != nil {
		parentOwner = *own
	}
	if err := c.mkdirAll(filepath.Dir(target), parentOwner); err != nil {
		return err
	}
	if err := c.clear(target, false); err != nil {
		return err
	}
	n := &node{src: it.host, info: it.info, dst: target, owner: own, remote: it.remote}
	if err := c.writeNode(ctx, n, nil); err != nil {
		return err
	}
	return n.setTimes()
}

// copyDir copies the contents of the source directory it into destHost. A missing
// destination is created owned by 0:0 with its missing parents, then (unless
// ownership is preserved) chowned; an existing one keeps its own metadata. This is
// the classic builder's CopyWithTar followed by fixPermissions.
func (c *copier) copyDir(ctx context.Context, it item, destHost string) error {
	// Only possible when the source root and the build root overlap (in-place builds):
	// the copy would feed on itself.
	if within(it.host, destHost) {
		return fmt.Errorf("cannot copy %s into itself (%s)", it.rel, c.imagePath(destHost))
	}
	own := c.identity(it)
	exists, err := c.isExistingDir(destHost)
	if err != nil {
		return err
	}
	if !exists {
		if err := c.mkdirAll(destHost, Owner{}); err != nil {
			return err
		}
		if own != nil {
			if err := os.Lchown(destHost, own.UID, own.GID); err != nil {
				return c.hostErr(err)
			}
		}
	}
	t := &tree{c: c, owner: own, links: map[fileID]string{}, base: it.rel}
	if err := t.copyChildren(ctx, it.host, it.rel, destHost, nil, !exists); err != nil {
		return err
	}
	if err := t.finish(); err != nil {
		return err
	}
	// --chmod covers the destination directory too when this copy created it.
	if !exists && c.req.Chmod != nil {
		if err := os.Chmod(destHost, c.req.Chmod.dirMode()); err != nil {
			return c.hostErr(err)
		}
	}
	return nil
}

// isExistingDir reports whether host exists as a directory (following a final
// symlink). A missing path is not an error; anything else (a file used as a
// directory on the way) is.
func (c *copier) isExistingDir(host string) (bool, error) {
	if c.isPlanned(host) {
		return false, nil
	}
	fi, err := os.Stat(host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, c.hostErr(err)
	}
	return fi.IsDir(), nil
}

// mkdirAll creates host and its missing parents inside the build root, each with mode
// 0755 and owner o, recording them as touched. host must have been resolved inside
// the root (no symlink left on the way).
func (c *copier) mkdirAll(host string, o Owner) error {
	var missing []string
	for p := host; ; p = filepath.Dir(p) {
		if c.isPlanned(p) {
			return &fs.PathError{Op: "mkdir", Path: c.imagePath(host), Err: syscall.ENOTDIR}
		}
		fi, err := os.Lstat(p)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: c.imagePath(host), Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return c.hostErr(err)
		}
		if p == c.dstRoot || !within(c.dstRoot, p) {
			return fmt.Errorf("build root %s does not exist", c.dstRoot)
		}
		missing = append(missing, p)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return c.hostErr(err)
		}
		if err := os.Lchown(p, o.UID, o.GID); err != nil {
			return c.hostErr(err)
		}
		if err := os.Chmod(p, 0o755); err != nil { // independent of the umask
			return c.hostErr(err)
		}
		c.touch(p)
	}
	return nil
}

// clear makes room for a new node at host: an existing directory is kept when the new
// node is a directory too (the two merge); anything else is removed, as the classic
// builder's untar does. It reports nothing; the caller knows what it writes next.
func (c *copier) clear(host string, newIsDir bool) error {
	_, err := c.clearFound(host, newIsDir)
	return err
}

// clearFound is clear, also reporting whether the root held anything at host.
func (c *copier) clearFound(host string, newIsDir bool) (bool, error) {
	c.unplan(host, false)
	fi, err := os.Lstat(host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return true, c.hostErr(err)
	case fi.IsDir() && newIsDir:
		return true, nil
	}
	if fi.IsDir() {
		c.unplan(host, true)
	}
	if err := os.RemoveAll(host); err != nil {
		return true, c.hostErr(err)
	}
	return true, nil
}

// hostErr rewrites the host paths in a *fs.PathError or *os.LinkError as image paths
// (or context paths), so messages say what the user wrote, not where the build root
// lives on this machine.
func (c *copier) hostErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: c.display(pe.Path), Err: pe.Err}
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return &os.LinkError{Op: le.Op, Old: c.display(le.Old), New: c.display(le.New), Err: le.Err}
	}
	return err
}

// display names a host path for messages: its image path inside the build root, its
// relative path inside the source root, or itself.
func (c *copier) display(host string) string {
	switch {
	case within(c.dstRoot, host):
		return c.imagePath(host)
	case within(c.src.Root, host):
		return c.srcRel(host)
	}
	return host
}

// within reports whether host is root or lies below it.
func within(root, host string) bool {
	if root == string(filepath.Separator) { // an in-place build: everything is inside
		return strings.HasPrefix(host, root)
	}
	return host == root || strings.HasPrefix(host, root+string(filepath.Separator))
}
