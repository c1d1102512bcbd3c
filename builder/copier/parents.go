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

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
)

// parentsMatch is one path a COPY --parents source selects: its place below the
// source's pivot directory, which is also its place below the destination.
type parentsMatch struct {
	host string      // host path, inside the source root
	rel  string      // slash-separated, relative to the pivot
	info fs.FileInfo // lstat of host
}

// parentsSource is one COPY --parents source split as BuildKit splits it: the part
// before a "/./" is the pivot (the source root when there is none), the part after it a
// .dockerignore-style pattern relative to the pivot ("*" stays within one path element,
// "**" crosses any number). A matching directory is copied whole.
type parentsSource struct {
	pivot    item                           // the pivot directory, looked up like a source
	pattern  string                         // cleaned, relative to the pivot
	matcher  *patternmatcher.PatternMatcher // of pattern
	required bool                           // no wildcard: the path must exist
}

func (c *copier) parseParents(orig string) (parentsSource, error) {
	if isURL(orig) {
		return parentsSource{}, errors.New("source can't be a URL for COPY")
	}
	pivot, pattern, ok := strings.Cut(orig, "/./")
	if !ok {
		pivot, pattern = "/", orig
	}
	pattern = strings.TrimPrefix(path.Clean("/"+pattern), "/")
	var ps parentsSource
	pv, err := c.stat(strings.TrimPrefix(path.Clean("/"+pivot), "/"))
	if err != nil {
		if c.src.Context && errors.Is(err, fs.ErrNotExist) {
			return ps, fmt.Errorf("file not found in build context or excluded by .dockerignore: %w", err)
		}
		return ps, err
	}
	if pattern == "" {
		pattern = "."
	}
	m, err := patternmatcher.New([]string{pattern})
	if err != nil {
		return ps, fmt.Errorf("invalid source %q: %w", orig, err)
	}
	return parentsSource{pivot: pv, pattern: pattern, matcher: m,
		required: !containsWildcards(pivot) && !containsWildcards(pattern)}, nil
}

// matches walks the pivot and returns the highest paths the pattern selects, in walk
// order; what lies below a selected directory is the copy's to walk. Only the
// directories that can lead to a match are entered.
func (c *copier) parentsMatches(ctx context.Context, ps parentsSource) ([]parentsMatch, error) {
	if ps.pattern == "." {
		if !ps.pivot.info.IsDir() {
			return []parentsMatch{{host: ps.pivot.host, rel: ps.pivot.name, info: ps.pivot.info}}, nil
		}
		return []parentsMatch{{host: ps.pivot.host, rel: ".", info: ps.pivot.info}}, nil
	}
	// The literal leading elements of the pattern: the walk follows them only.
	var literal []string
	for _, el := range strings.Split(ps.pattern, "/") {
		if containsWildcards(el) || el == "**" {
			break
		}
		literal = append(literal, el)
	}
	var out []parentsMatch
	var walk func(dir, rel string, depth int) error
	walk = func(dir, rel string, depth int) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("reading %s: %w", c.srcRel(dir), unwrapPathError(err))
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if depth < len(literal) && e.Name() != literal[depth] {
				continue
			}
			childRel := path.Join(rel, e.Name())
			host := filepath.Join(dir, e.Name())
			out0, search := c.leftOut(ps.pivot.rel, c.srcRel(host))
			fi, err := e.Info()
			if err != nil {
				return fmt.Errorf("stat %s: %w", c.srcRel(host), unwrapPathError(err))
			}
			if !out0 {
				if m, _ := ps.matcher.MatchesOrParentMatches(childRel); m {
					out = append(out, parentsMatch{host: host, rel: childRel, info: fi})
					continue
				}
			}
			if fi.IsDir() && (!out0 || search) {
				if err := walk(host, childRel, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !ps.pivot.info.IsDir() {
		return nil, nil
	}
	if err := walk(ps.pivot.host, ".", 0); err != nil {
		return nil, err
	}
	if len(out) == 0 && ps.required {
		p := path.Join(ps.pivot.rel, ps.pattern)
		err := fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		if c.src.Context {
			return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: %w", err)
		}
		return nil, err
	}
	return out, nil
}

// copyParents performs COPY --parents: each selected path lands at the same place below
// the destination (always a directory) as below its pivot, the directories on the way
// created like their source directories (mode, times; owner as for the copied paths)
// unless they exist.
func (c *copier) copyParents(ctx context.Context, dest string) error {
	destHost, err := c.resolveDir(dest)
	if err != nil {
		return err
	}
	own := c.identity(item{})
	t := &tree{c: c, owner: own, links: map[fileID]string{}}
	for _, s := range c.req.Sources {
		ps, err := c.parseParents(s)
		if err != nil {
			return err
		}
		found, err := c.parentsMatches(ctx, ps)
		if err != nil {
			return err
		}
		t.base = ps.pivot.rel
		for _, m := range found {
			dst := filepath.Join(destHost, filepath.FromSlash(m.rel))
			if err := t.parentDirs(ctx, ps.pivot.host, destHost, m.rel); err != nil {
				return err
			}
			if m.rel == "." {
				if err := t.copyChildren(ctx, m.host, ps.pivot.rel, dst, nil, false); err != nil {
					return err
				}
				continue
			}
			n := &node{src: m.host, info: m.info, dst: dst, owner: own}
			if err := c.clear(dst, m.info.IsDir()); err != nil {
				return err
			}
			if err := c.writeNode(ctx, n, t.links); err != nil {
				return err
			}
			if !m.info.IsDir() {
				if err := n.setTimes(); err != nil {
					return c.hostErr(err)
				}
				continue
			}
			t.dirs = append(t.dirs, n)
			if err := t.copyChildren(ctx, m.host, c.srcRel(m.host), dst, nil, false); err != nil {
				return err
			}
		}
	}
	return t.finish()
}

// resolveDir resolves dest inside the build root and creates it (0755, root) when it
// is missing.
func (c *copier) resolveDir(dest string) (string, error) {
	destHost, err := securejoin.SecureJoin(c.dstRoot, dest)
	if err != nil {
		return "", fmt.Errorf("resolving destination %s: %w", dest, err)
	}
	exists, err := c.isExistingDir(destHost)
	if err != nil {
		return "", err
	}
	if !exists {
		if err := c.mkdirAll(destHost, Owner{}); err != nil {
			return "", err
		}
	}
	return destHost, nil
}

// parentDirs creates, below destHost, the missing directories between it and rel (a
// path below the pivot pivotHost), each like its source directory.
func (t *tree) parentDirs(ctx context.Context, pivotHost, destHost, rel string) error {
	dir := path.Dir(rel)
	if dir == "." || rel == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		sub := filepath.FromSlash(strings.Join(parts[:i+1], "/"))
		dst := filepath.Join(destHost, sub)
		if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
			continue
		}
		src := filepath.Join(pivotHost, sub)
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("stat %s: %w", t.c.srcRel(src), unwrapPathError(err))
		}
		if err := t.c.clear(dst, true); err != nil {
			return err
		}
		n := &node{src: src, info: fi, dst: dst, owner: t.owner}
		if err := t.c.writeNode(ctx, n, nil); err != nil {
			return err
		}
		t.dirs = append(t.dirs, n)
	}
	return nil
}
