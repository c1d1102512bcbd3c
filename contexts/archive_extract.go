package contexts

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// extractor writes a tar stream into a fresh context directory. It is the only
// writer of root while it runs, so resolving a parent once and then creating the last
// component with O_NOFOLLOW/O_EXCL cannot be raced by the archive itself.
type extractor struct {
	root     string
	settings archiveSettings

	entries int
	bytes   int64
	dirs    map[string]dirMeta // by path; applied last: creating children changes a directory's mtime

	disk    string // WithMemoryFirst: where the context moves once it outgrows memory
	spilled bool   // it has moved
}

type dirMeta struct {
	mode  os.FileMode
	mtime time.Time
}

// extract reads every entry of r. An archive that stops at an entry boundary, without
// end-of-archive blocks (or with a header cut short after complete entries), ends the
// context; one that stops inside a file's data is an error.
func (x *extractor) extract(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF || (errors.Is(err, io.ErrUnexpectedEOF) && x.entries > 0) {
			break
		}
		if err != nil {
			// "this is not a tar" answers dockerd's plain "unexpected EOF"; keep that text.
			return err
		}
		x.entries++
		if max := x.settings.maxEntries; max > 0 && x.entries > max {
			return fmt.Errorf("%w: more than %d entries (--max-context-entries)", ErrLimitExceeded, max)
		}
		if err := x.entry(h, tr); err != nil {
			return err
		}
	}
	paths := slices.Collect(maps.Keys(x.dirs))
	// Longest first: children before their parents, whose mtimes they would change.
	slices.SortFunc(paths, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, p := range paths {
		d := x.dirs[p]
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		if err := os.Chtimes(p, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("build context: %w", err)
		}
	}
	return nil
}

// entry creates one archive entry.
func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	rel, err := entryName(h.Name)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil // FIFOs, devices, global PAX headers: nothing COPY could use
	}
	if rel == "." {
		return nil // the "./" entry GNU tar writes: the root exists already
	}
	target, err := x.prepare(rel, h.Typeflag == tar.TypeDir)
	if err != nil {
		return fmt.Errorf("build context entry %q: %w", h.Name, err)
	}
	mode := h.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	switch h.Typeflag {
	case tar.TypeDir:
		x.dirs[target] = dirMeta{mode: mode, mtime: h.ModTime}
		return nil
	case tar.TypeReg:
		err = x.file(target, h, r, mode)
	case tar.TypeSymlink:
		err = os.Symlink(h.Linkname, target)
		if err == nil {
			err = lchtimes(target, h.ModTime)
		}
	case tar.TypeLink:
		err = x.hardlink(target, h.Linkname)
	}
	if err != nil {
		return fmt.Errorf("build context entry %q: %w", h.Name, err)
	}
	return nil
}

// entryName turns a tar name into a clean relative path ("." for the root): leading
// "/" and "./" are dropped, and a name whose ".." components climb out of the root is
// refused rather than clamped, so a hostile archive fails loudly.
func entryName(name string) (string, error) {
	rel := strings.TrimLeft(name, "/")
	if !insideAfterDotDot(rel) {
		return "", fmt.Errorf("build context entry %q: path escapes the context", name)
	}
	rel = path.Clean(rel)
	if len(rel) >= MaxPathBytes {
		return "", fmt.Errorf("%w: entry %q...: path longer than %d bytes (PATH_MAX)", ErrLimitExceeded, rel[:64], MaxPathBytes-1)
	}
	if depth := strings.Count(rel, "/") + 1; depth > MaxPathDepth {
		return "", fmt.Errorf("%w: entry %q...: path deeper than %d directories", ErrLimitExceeded, rel[:64], MaxPathDepth)
	}
	return rel, nil
}

// MaxPathBytes and MaxPathDepth bound an archive entry's name: PATH_MAX (with its
// NUL), past which the kernel refuses the path anyway, and a depth no real tree
// needs, which keeps the recursive walks of COPY and the snapshotter shallow.
const (
	MaxPathBytes = 4096
	MaxPathDepth = 1024
)

// insideAfterDotDot reports whether a relative name with ".." components stays inside
// the root at every step ("a/../b" does, "a/../../b" does not).
func insideAfterDotDot(name string) bool {
	depth := 0
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return false
			}
		default:
			depth++
		}
	}
	return true
}

// prepare resolves rel's parent inside the root (creating it), and clears whatever
// the archive put at rel before, unless both are directories. It returns the path at
// which the entry is to be created; its last component is not resolved, so a symlink
// there is replaced, never followed.
func (x *extractor) prepare(rel string, dir bool) (string, error) {
	parent, err := securejoin.SecureJoin(x.root, path.Dir(rel))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	target := filepath.Join(parent, path.Base(rel))
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if dir {
			return target, os.Mkdir(target, 0o755)
		}
		return target, nil
	case err != nil:
		return "", err
	case dir && fi.IsDir():
		return target, nil
	}
	if err := os.RemoveAll(target); err != nil {
		return "", err
	}
	for p := range x.dirs { // what was removed keeps no metadata to restore
		if p == target || strings.HasPrefix(p, target+"/") {
			delete(x.dirs, p)
		}
	}
	if dir {
		return target, os.Mkdir(target, 0o755)
	}
	return target, nil
}

// file writes a regular file's content, counting it against the size limit before a
// byte is written.
func (x *extractor) file(target string, h *tar.Header, r io.Reader, mode os.FileMode) error {
	x.bytes += h.Size
	if max := x.settings.maxBytes; max > 0 && x.bytes > max {
		return fmt.Errorf("%w: more than %d bytes (--max-context-size)", ErrLimitExceeded, max)
	}
	if x.disk != "" && !x.spilled && x.bytes > x.settings.memBytes {
		old := x.root
		if err := x.spill(x.disk); err != nil {
			return err
		}
		target = x.root + strings.TrimPrefix(target, old)
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(target, h.ModTime, h.ModTime)
}

// hardlink links target to an earlier entry. The source is resolved like a new
// entry: its parent inside the root, its last component unresolved, so a link to a
// symlink links the symlink itself (link(2) does not follow).
func (x *extractor) hardlink(target, linkname string) error {
	rel, err := entryName(linkname)
	if err != nil || rel == "." {
		return fmt.Errorf("hard link to %q: path escapes the context", linkname)
	}
	parent, err := securejoin.SecureJoin(x.root, path.Dir(rel))
	if err != nil {
		return err
	}
	src := filepath.Join(parent, path.Base(rel))
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link to %q: it is a directory", linkname)
	}
	return os.Link(src, target)
}

// lchtimes sets a symlink's own times.
func lchtimes(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
