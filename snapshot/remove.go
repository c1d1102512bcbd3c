package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Reset removes everything under root except ignored paths (and the directories that
// lead to them), returning root to empty. In-place builds call it before and after
// every build so that one build's files never leak into the next.
func Reset(ctx context.Context, root string, ig *Ignore) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("reset %s: %w", root, err)
	}
	abs = filepath.Clean(abs)
	if ig.Match("/") {
		return nil
	}
	_, err = emptyDir(ctx, abs, "/", ig)
	return err
}

// removeTree removes host (image path img) and everything below it, except ignored
// paths and the directories leading to them. It reports whether host is gone and
// whether a directory was (partly) removed, so callers can drop cached resolutions.
// A missing host is not an error. The final component is never followed.
func removeTree(ctx context.Context, host, img string, ig *Ignore) (gone, wasDir bool, err error) {
	if ig.Match(img) {
		return false, false, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, false, nil
		}
		return false, false, &os.PathError{Op: "lstat", Path: host, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlink(host); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, false, &os.PathError{Op: "unlink", Path: host, Err: err}
		}
		return true, false, nil
	}
	if !ig.within(img) {
		// os.RemoveAll never follows symlinks below host (it uses unlinkat/openat
		// with O_NOFOLLOW), so a link inside the tree cannot redirect the deletion.
		if err := os.RemoveAll(host); err != nil {
			return false, true, fmt.Errorf("removing %s: %w", img, err)
		}
		return true, true, nil
	}
	empty, err := emptyDir(ctx, host, img, ig)
	if err != nil || !empty {
		return false, true, err
	}
	if err := unix.Rmdir(host); err != nil {
		return false, true, &os.PathError{Op: "rmdir", Path: host, Err: err}
	}
	return true, true, nil
}

// emptyDir removes the entries of the directory host (image path img) that are not
// ignored, descending into directories that hold ignored paths. It reports whether
// the directory ended up empty.
func emptyDir(ctx context.Context, host, img string, ig *Ignore) (bool, error) {
	names, err := readNames(host)
	if err != nil {
		return false, err
	}
	empty := true
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		gone, _, err := removeTree(ctx, joinHost(host, name), joinImage(img, name), ig)
		if err != nil {
			return false, err
		}
		empty = empty && gone
	}
	return empty, nil
}

// readNames lists a directory without sorting or stat-ing its entries.
func readNames(host string) ([]string, error) {
	// O_NOFOLLOW: host was found to be a directory by lstat; never let a symlink
	// swapped in since then redirect the listing (and so the removal) elsewhere.
	f, err := os.OpenFile(host, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", host, err)
	}
	return names, nil
}

// joinImage appends name to the image directory dir without path.Join's Clean,
// which the callers' already-clean inputs do not need.
func joinImage(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// joinHost appends name to the host directory dir, which is "/" itself for an
// in-place build.
func joinHost(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + string(filepath.Separator) + name
}
