package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Selected is one path a COPY or ADD reads from its source, as Select reports it.
type Selected struct {
	// Rel is the path relative to the source root, slash-separated.
	Rel string
	// Name is, for a source as written (or a wildcard match), the name it gets inside a
	// destination directory; empty for the paths found below a source directory.
	Name string
	// Host is the path to read on this machine, with no symlink left in it.
	Host string
	// Info is the lstat of Host.
	Info fs.FileInfo
}

// ErrRemoteSource is returned by Select for an ADD source that is a URL: what it
// selects is only known once it is downloaded.
var ErrRemoteSource = errors.New("the source is a URL")

// Select calls fn for every path that Copy with the same source and sources would read,
// in the order Copy reads them: each source after wildcard expansion, then, for a
// directory, everything below it that .dockerignore leaves in. It is how a build cache
// keys a COPY on the content it copies without copying anything.
// Only req's Sources, Exclude and Parents matter.
func Select(ctx context.Context, src Source, req Request, fn func(Selected) error) error {
	root, err := filepath.Abs(src.Root)
	if err != nil {
		return fmt.Errorf("source root %q: %w", src.Root, err)
	}
	src.Root = root
	exclude, err := newExcluder(req.Exclude)
	if err != nil {
		return err
	}
	c := &copier{src: src, req: req, exclude: exclude}
	if req.Parents {
		return c.selectParents(ctx, fn)
	}
	n := 0
	for _, s := range req.Sources {
		if isURL(s) {
			return fmt.Errorf("%s: %w", s, ErrRemoteSource)
		}
		items, err := c.lookup(ctx, s, true)
		if err != nil {
			return err
		}
		for _, it := range items {
			n++
			if err := fn(Selected{Rel: it.rel, Name: it.name, Host: it.host, Info: it.info}); err != nil {
				return err
			}
			if it.info.IsDir() {
				if err := c.selectChildren(ctx, it.rel, it.host, it.rel, fn); err != nil {
					return err
				}
			}
		}
	}
	if n == 0 {
		return errors.New("no source files were specified")
	}
	return nil
}

// selectChildren reports what tree.copyChildren would copy from the directory dir (rel
// in the source): excluded entries are skipped, but an excluded directory is still
// searched when .dockerignore may re-include something below it.
func (c *copier) selectChildren(ctx context.Context, base, dir, rel string, fn func(Selected) error) error {
	entries, err := c.listDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", rel, unwrapPathError(err))
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		childRel := path.Join(rel, e.name)
		host := filepath.Join(dir, e.name)
		if out, search := c.leftOut(base, childRel); out {
			if e.err == nil && e.info.IsDir() && search {
				if err := c.selectChildren(ctx, base, host, childRel, fn); err != nil {
					return err
				}
			}
			continue
		}
		fi, err := e.info, e.err
		if err != nil {
			return fmt.Errorf("stat %s: %w", childRel, unwrapPathError(err))
		}
		if err := fn(Selected{Rel: childRel, Host: host, Info: fi}); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := c.selectChildren(ctx, base, host, childRel, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// selectParents reports what copyParents reads: each selected path with, as its Name,
// its place below the destination, the source directories on the way to it (whose
// metadata the copy takes), and everything below a selected directory.
func (c *copier) selectParents(ctx context.Context, fn func(Selected) error) error {
	for _, s := range c.req.Sources {
		ps, err := c.parseParents(s)
		if err != nil {
			return err
		}
		found, err := c.parentsMatches(ctx, ps)
		if err != nil {
			return err
		}
		for _, m := range found {
			if m.rel != "." {
				parts := strings.Split(m.rel, "/")
				for i := 1; i < len(parts); i++ {
					host := filepath.Join(ps.pivot.host, filepath.FromSlash(strings.Join(parts[:i], "/")))
					fi, err := os.Lstat(host)
					if err != nil {
						return fmt.Errorf("stat %s: %w", c.srcRel(host), unwrapPathError(err))
					}
					if err := fn(Selected{Rel: c.srcRel(host), Name: strings.Join(parts[:i], "/"), Host: host, Info: fi}); err != nil {
						return err
					}
				}
			}
			rel := c.srcRel(m.host)
			if err := fn(Selected{Rel: rel, Name: m.rel, Host: m.host, Info: m.info}); err != nil {
				return err
			}
			if m.info.IsDir() {
				if err := c.selectChildren(ctx, ps.pivot.rel, m.host, rel, fn); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// listDir lists dir as readDirStat does, through the source's List when it knows dir.
func (c *copier) listDir(dir string) ([]dirEntry, error) {
	if c.src.List != nil {
		rel, ok := ".", dir == c.src.Root
		if !ok {
			rel, ok = strings.CutPrefix(dir, c.src.Root+string(filepath.Separator))
		}
		if ok {
			if infos, known := c.src.List(filepath.ToSlash(rel)); known {
				out := make([]dirEntry, len(infos))
				for i, fi := range infos {
					out[i] = dirEntry{name: fi.Name(), info: fi}
				}
				return out, nil
			}
		}
	}
	return readDirStat(dir)
}
