package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"golang.org/x/sys/unix"
)

// whiteout applies "dir/.wh.name": the lower layers' img is removed, recursively.
// Ignored paths survive, as does anything when the parent does not exist.
func (x *extractor) whiteout(ctx context.Context, img, entry string) error {
	if x.cfg.ignore.Match(img) {
		return nil
	}
	parent, err := x.fs.dir(path.Dir(img), false)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", entry, err)
	}
	host := joinHost(parent, path.Base(img))
	_, wasDir, err := removeTree(ctx, host, x.fs.imagePath(host), x.cfg.ignore)
	if wasDir {
		x.fs.forget()
	}
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", entry, err)
	}
	return nil
}

// opaque applies "dir/.wh..wh..opq": dir keeps only what this stream wrote into it
// (before or after the marker), hiding all lower content.
func (x *extractor) opaque(ctx context.Context, dir, entry string) error {
	if x.cfg.ignore.Match(dir) {
		return nil
	}
	host, err := x.fs.dir(dir, false)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", entry, err)
	}
	removed, err := x.pruneUnwritten(ctx, host, x.fs.imagePath(host))
	if removed {
		x.fs.forget()
	}
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", entry, err)
	}
	return nil
}

// pruneUnwritten removes the entries of the directory host (image path img) that
// this stream did not write, descending into directories it wrote into. It reports
// whether anything was removed.
func (x *extractor) pruneUnwritten(ctx context.Context, host, img string) (bool, error) {
	names, err := readNames(host)
	if err != nil {
		return false, err
	}
	removed := false
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		cimg, chost := joinImage(img, name), joinHost(host, name)
		if _, ok := x.written[cimg]; !ok {
			_, _, err := removeTree(ctx, chost, cimg, x.cfg.ignore)
			removed = true
			if err != nil {
				return removed, err
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(chost, &st); err != nil {
			return removed, &fs.PathError{Op: "lstat", Path: chost, Err: err}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			r, err := x.pruneUnwritten(ctx, chost, cimg)
			removed = removed || r
			if err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}
