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
)

// item is one source after lookup: a file, directory or other node inside the source
// root (symlinks already followed), or a downloaded file.
type item struct {
	host   string      // host path, with no symlink left in it
	rel    string      // host relative to the source root, slash-separated; "" for downloads
	name   string      // base name the item gets inside a destination directory
	info   fs.FileInfo // lstat of host
	remote bool        // downloaded from a URL: never extracted
}

// resolveSources looks up every source in order, downloading URLs, and expands
// wildcards, as the classic builder's getCopyInfosForSourcePaths does.
func (c *copier) resolveSources(ctx context.Context) ([]item, error) {
	var items []item
	for _, s := range c.req.Sources {
		if isURL(s) {
			if !c.req.Add {
				return nil, errors.New("source can't be a URL for COPY")
			}
			it, err := c.download(ctx, s)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
			continue
		}
		found, err := c.lookup(ctx, s, true)
		if err != nil {
			return nil, err
		}
		items = append(items, found...)
	}
	if len(items) == 0 {
		return nil, errors.New("no source files were specified")
	}
	return items, nil
}

// lookup finds the source orig (as written) in the source root. Like the classic
// builder, one leading "/" and then one leading "./" are dropped, so "/x", "./x" and
// "x" name the same path.
func (c *copier) lookup(ctx context.Context, orig string, wildcards bool) ([]item, error) {
	p := strings.TrimPrefix(orig, "/")
	p = strings.TrimPrefix(p, "./")
	if wildcards && containsWildcards(p) {
		return c.matchWildcard(ctx, p)
	}
	it, err := c.stat(p)
	if err != nil {
		if c.src.Context && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: %w", err)
		}
		return nil, err
	}
	return []item{it}, nil
}

// stat resolves the source path p inside the source root, following symlinks as if the
// root were "/". A path hidden by .dockerignore, or a symlink leading to one, does not
// exist.
func (c *copier) stat(p string) (item, error) {
	clean := filepath.ToSlash(filepath.Clean(p))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return item{}, fmt.Errorf("forbidden path outside the build context: %s", p)
	}
	notFound := &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}

	host, err := securejoin.SecureJoin(c.src.Root, clean)
	if err != nil {
		return item{}, fmt.Errorf("resolving %s: %w", p, err)
	}
	rel := c.srcRel(host)
	fi, err := os.Lstat(host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return item{}, notFound
	case err != nil:
		return item{}, &fs.PathError{Op: "stat", Path: p, Err: unwrapPathError(err)}
	}
	if c.hidden(rel, host, fi) || (clean != rel && c.excluded(clean)) {
		return item{}, notFound
	}
	return item{host: host, rel: rel, name: path.Base(clean), info: fi}, nil
}

// matchWildcard walks the source root and matches every path against pattern with
// filepath.Match, as the classic builder's copyWithWildcards does: "*" never crosses a
// "/", matches come in lexical walk order, and a matching symlink is followed.
func (c *copier) matchWildcard(ctx context.Context, pattern string) ([]item, error) {
	// A pattern matches only names with at most as many slashes as it has, so the
	// walk need not go deeper than that.
	maxSlashes := strings.Count(pattern, "/")
	var items []item
	err := filepath.WalkDir(c.src.Root, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := c.srcRel(host)
		if rel == "." {
			return nil
		}
		excluded := c.excluded(rel)
		if ok, _ := filepath.Match(pattern, rel); ok && (!excluded || d.IsDir() && c.hasIncluded(host, rel)) {
			found, err := c.lookup(ctx, rel, false)
			if err != nil {
				return err
			}
			items = append(items, found...)
		}
		if d.IsDir() && (strings.Count(rel, "/") >= maxSlashes || excluded && c.src.NoExceptions) {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// excluded reports whether rel (slash-separated, relative to the source root) is
// hidden by .dockerignore.
func (c *copier) excluded(rel string) bool {
	if c.src.Excluded == nil || rel == "." || rel == "" {
		return false
	}
	return c.src.Excluded(rel)
}

// hidden reports whether the node at host (rel in the source) is absent from the
// context: excluded, and not a directory holding a re-included path (the docker CLI
// sends such a directory's included descendants, so it exists).
func (c *copier) hidden(rel, host string, fi fs.FileInfo) bool {
	return c.excluded(rel) && !(fi.IsDir() && c.hasIncluded(host, rel))
}

// hasIncluded reports whether the excluded directory host (rel in the source) has a
// descendant that .dockerignore re-includes.
func (c *copier) hasIncluded(host, rel string) bool {
	if c.src.NoExceptions || c.src.Excluded == nil {
		return false
	}
	found := errors.New("found")
	err := filepath.WalkDir(host, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == host {
			return nil
		}
		sub, _ := filepath.Rel(host, p)
		if !c.excluded(path.Join(rel, filepath.ToSlash(sub))) {
			return found
		}
		return nil
	})
	return err == found
}

// srcRel turns a host path inside the source root into a slash-separated relative path.
func (c *copier) srcRel(host string) string {
	rel, err := filepath.Rel(c.src.Root, host)
	if err != nil {
		return host
	}
	return filepath.ToSlash(rel)
}

// containsWildcards reports whether name holds an unescaped *, ? or [, the classic
// builder's test for "this source is a pattern".
func containsWildcards(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// unwrapPathError drops the host path from a *fs.PathError so messages name the path
// as the user wrote it, not where the context happens to live on this machine.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
