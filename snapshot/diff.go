package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Changes is what a layer must record: paths to write, paths to white out and
// directories whose lower content must be hidden. All paths are image paths.
type Changes struct {
	// Changed holds paths added or modified, sorted so parents come before children.
	Changed []string
	// Deleted holds removed paths; only the topmost path of a removed subtree.
	Deleted []string
	// Opaque holds directories removed and re-created (or that replaced a
	// non-directory): lower content below them must be hidden.
	Opaque []string
}

// Empty reports whether c records nothing, i.e. no layer is needed.
func (c *Changes) Empty() bool {
	return c == nil || len(c.Changed)+len(c.Deleted)+len(c.Opaque) == 0
}

// Diff walks root again and compares it with ix. It returns what changed and a fresh
// Index of the current tree, so that the next Diff compares against now.
//
// Directories count as changed only when new, replaced, or when their type, mode or
// owner changed: their times and link counts move whenever a child is added or
// removed, and such children are reported on their own. This keeps a RUN that
// creates and removes mount points, and changes nothing else, free of a layer.
//
// Diff walks the tree comparing as it goes: a path whose record did not change costs
// one statx, and a Diff that finds nothing shares its index with ix rather than
// building a new one.
func (ix *Index) Diff(ctx context.Context, root string) (*Changes, *Index, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, nil, fmt.Errorf("diff %s: %w", root, err)
	}
	next := &Index{cfg: ix.cfg}
	next.slots.Store(ix.slots.Load())
	delta := map[string]fileInfo{}
	w := newWalker(ctx, ix.cfg, delta, &next.slots)
	w.compareWith(ix.files)
	if !ix.cfg.ignore.Match("/") {
		w.walk(subdir{host: filepath.Clean(abs), img: "/"})
		if err := w.wait(); err != nil {
			return nil, nil, err
		}
	}
	ch := &Changes{}
	opaque := map[string]bool{}
	for p, n := range delta {
		// Everything below a replaced directory is in the layer, since the opaque
		// marker hides the lower copies even of unchanged files.
		changed := w.below[p]
		o, ok := ix.files[p]
		switch {
		case !ok:
			changed = true
		case n.isDir() && o.isDir():
			if !sameInode(&o, &n) {
				opaque[p] = true
				changed = true
			} else if dirChanged(&o, &n) {
				changed = true
			}
		case n.typ() != o.typ():
			changed = true
			if n.isDir() {
				opaque[p] = true
			}
		case fileChanged(ix.cfg.mode, &o, &n):
			changed = true
		}
		if changed {
			ch.Changed = append(ch.Changed, p)
		}
	}
	var gone []string
	if w.found < len(ix.files) {
		// current is the record of p in the tree now, if it is there.
		current := func(p string) (fileInfo, bool) {
			if n, ok := delta[p]; ok {
				return n, true
			}
			o, ok := ix.files[p]
			return o, ok && w.seen[o.slot]
		}
		for p, o := range ix.files {
			if w.seen[o.slot] {
				continue
			}
			gone = append(gone, p)
			// Report only the topmost removal, and nothing below a parent that is no
			// longer the same directory: its replacement hides the lower content.
			if parent := path.Dir(p); parent != "/" {
				n, ok := current(parent)
				if !ok || !n.isDir() || opaque[parent] {
					continue
				}
			}
			ch.Deleted = append(ch.Deleted, p)
		}
	}
	for p := range opaque {
		ch.Opaque = append(ch.Opaque, p)
	}
	// Lexical order puts every parent (a prefix) before its children.
	sort.Strings(ch.Changed)
	sort.Strings(ch.Deleted)
	sort.Strings(ch.Opaque)

	if len(delta) == 0 && len(gone) == 0 {
		next.files, next.shared, ix.shared = ix.files, true, true
		return ch, next, nil
	}
	next.files = maps.Clone(ix.files)
	for _, p := range gone {
		delete(next.files, p)
	}
	maps.Copy(next.files, delta)
	return ch, next, nil
}

// underAny reports whether p or one of its ancestors is in set.
func underAny(p string, set map[string]bool) bool {
	for {
		if set[p] {
			return true
		}
		if p == "/" {
			return false
		}
		p = path.Dir(p)
	}
}

// sameInode reports whether o and n are the same file rather than a new file that
// reuses the number of a deleted one.
func sameInode(o, n *fileInfo) bool {
	return o.ino == n.ino && o.dev == n.dev && o.btime == n.btime
}

// dirChanged compares two directories that are the same inode. Their ctime and link
// count are not compared: the RUN executor creates and removes mount points and puts
// the parent's mtime back, which it cannot do for ctime. An mtime change does count,
// as it does for Docker (a directory whose entries changed is copied up by overlayfs
// and lands in the layer even when nothing below it remains changed).
func dirChanged(o, n *fileInfo) bool {
	return o.mode != n.mode || o.uid != n.uid || o.gid != n.gid || o.mtime != n.mtime
}

// fileChanged compares two non-directories of the same type under mode m.
func fileChanged(m Mode, o, n *fileInfo) bool {
	if o.size != n.size || o.mtime != n.mtime {
		return true
	}
	if m == ModeTime {
		return false
	}
	if o.mode != n.mode || o.uid != n.uid || o.gid != n.gid || o.ctime != n.ctime ||
		!sameInode(o, n) || o.nlink != n.nlink || o.link != n.link {
		return true
	}
	return m == ModeFull && o.sum != n.sum
}

// Update re-records the given image paths and their ancestors after the builder
// itself wrote them (COPY, ADD), so the next Diff does not report them again. A
// directory among paths is re-recorded with its whole subtree. Paths that no longer
// exist, and everything below them, leave the index.
func (ix *Index) Update(root string, paths []string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("update %s: %w", root, err)
	}
	abs = filepath.Clean(abs)
	clean := make([]string, 0, len(paths))
	for _, p := range paths {
		p = path.Clean("/" + p)
		if p == "/" {
			fresh, err := scan(context.Background(), abs, ix.cfg, len(ix.files))
			if err != nil {
				return err
			}
			ix.files, ix.shared = fresh.files, false
			ix.slots.Store(fresh.slots.Load())
			return nil
		}
		if !ix.cfg.ignore.Match(p) {
			clean = append(clean, p)
		}
	}
	if ix.shared {
		ix.files, ix.shared = maps.Clone(ix.files), false
	}
	sort.Strings(clean)
	// Subtrees to drop before re-recording: those of the directories the index held
	// among paths, whatever they are now. Nothing is recorded below other paths, as
	// the index holds the ancestors of every path.
	var drop, rescan []string
	var covered string // the last rescanned directory; sorted order keeps its subtree adjacent
	for _, p := range clean {
		if covered != "" && under(p, covered) {
			continue
		}
		old, had := ix.files[p]
		fi, ok, err := ix.restat(abs, p)
		if err != nil {
			return err
		}
		if had && old.isDir() {
			drop = append(drop, p)
		}
		if !ok {
			delete(ix.files, p)
		} else if fi.isDir() {
			rescan = append(rescan, p)
			covered = p
		}
	}
	ix.dropBelow(drop)
	if len(rescan) == 0 {
		return nil
	}
	w := newWalker(context.Background(), ix.cfg, ix.files, &ix.slots)
	for _, p := range rescan {
		w.walk(subdir{host: filepath.Join(abs, p), img: p})
	}
	return w.wait()
}

// dropBelow removes every path strictly below one of dirs from the index. A few
// directories, the usual case after a COPY, are matched as prefixes; many through
// their ancestors.
func (ix *Index) dropBelow(dirs []string) {
	if len(dirs) == 0 {
		return
	}
	prefixes := make([]string, len(dirs))
	set := make(map[string]bool, len(dirs))
	for i, d := range dirs {
		prefixes[i] = d + "/"
		set[d] = true
	}
	for p := range ix.files {
		if len(dirs) > 8 {
			if underAny(path.Dir(p), set) {
				delete(ix.files, p)
			}
			continue
		}
		for _, pre := range prefixes {
			if strings.HasPrefix(p, pre) {
				delete(ix.files, p)
				break
			}
		}
	}
}

// restat records p and its ancestors. ok is false when p does not exist as a path
// of the tree, including when an ancestor is no longer a real directory.
func (ix *Index) restat(root, p string) (fileInfo, bool, error) {
	parts := strings.Split(p[1:], "/")
	img, host := "", root
	var fi fileInfo
	for i, name := range parts {
		fd, err := unix.Open(host, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return fi, false, nil
		}
		if err != nil {
			return fi, false, &os.PathError{Op: "open", Path: host, Err: err}
		}
		var ok bool
		fi, ok, err = statAt(fd, host, name, ix.cfg.mode)
		if ix.cfg.noBirthTime {
			fi.btime = 0
		}
		unix.Close(fd)
		if err != nil || !ok {
			return fi, false, err
		}
		img, host = img+"/"+name, joinHost(host, name)
		fi.slot = ix.slots.Add(1) - 1
		ix.files[img] = fi
		if i < len(parts)-1 && !fi.isDir() {
			return fi, false, nil
		}
	}
	return fi, true, nil
}
