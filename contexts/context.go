package contexts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Context is a build context materialised as a local directory, with the
// .dockerignore rules that hide some of its files from COPY and ADD.
type Context struct {
	// Dir is the absolute path of the context's root directory.
	Dir string
	// Patterns are the .dockerignore patterns in force (for reporting).
	Patterns []string
	// Digests, when not nil, knows the content digests of some of the context's
	// files, so that a build need not read them again (the BuildKit door's cached
	// contexts: file sync hashes what it receives).
	Digests FileDigests
	// Listing, when not nil, lists the context's directories from what is known of
	// them (the BuildKit door's cached contexts: the receiver keeps every entry's
	// metadata), so that a build's cache key reads no metadata from the disk.
	Listing DirListing

	matcher *patternmatcher.PatternMatcher
	owned   string // a temporary directory Close removes ("" for a directory context)
}

// FileDigests knows the content digests of a context's regular files.
type FileDigests interface {
	// FileDigest returns the sha256 of the content of the file at rel (slash-separated,
	// below the context's Dir), "sha256:<hex>", when it knows it for a file with info's
	// size and modification time; false otherwise.
	FileDigest(rel string, info fs.FileInfo) (string, bool)
}

// DirListing knows the entries of a context's directories.
type DirListing interface {
	// List returns the entries of the directory rel (slash-separated, below the
	// context's Dir; "." for Dir) in name order, each with the lstat it has, or false
	// when it does not know them.
	List(rel string) ([]fs.FileInfo, bool)
}

// FromDir opens the directory dir as a build context, reading its .dockerignore.
func FromDir(dir string) (*Context, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("context directory %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("context directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("context %q is not a directory", dir)
	}
	c := &Context{Dir: abs}
	f, err := os.Open(filepath.Join(abs, ".dockerignore"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	if err := c.setPatterns(patterns); err != nil {
		return nil, err
	}
	return c, nil
}

// FromDirPatterns opens the directory dir as a build context whose files were already
// chosen by patterns: a BuildKit client applies .dockerignore (or the Dockerfile's own
// Dockerfile.dockerignore) before it sends the context, and the context's own
// .dockerignore file, if any, must not be applied a second time.
func FromDirPatterns(dir string, patterns []string) (*Context, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("context directory %q: %w", dir, err)
	}
	c := &Context{Dir: abs}
	if err := c.setPatterns(patterns); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Context) setPatterns(patterns []string) error {
	if len(patterns) == 0 {
		return nil
	}
	m, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	c.Patterns, c.matcher = patterns, m
	return nil
}

// Excluded reports whether rel (a slash-separated path relative to the context root)
// is hidden by .dockerignore. The root itself is never excluded.
func (c *Context) Excluded(rel string) bool {
	if c == nil || c.matcher == nil {
		return false
	}
	rel = strings.TrimLeft(filepath.ToSlash(filepath.Clean(rel)), "/") // "//a", "/a/", "./a" are "a"
	if rel == "." || rel == "" {
		return false
	}
	ok, err := c.matcher.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// HasExceptions reports whether .dockerignore re-includes paths ("!pattern"), in
// which case a walk must descend into excluded directories.
func (c *Context) HasExceptions() bool {
	return c != nil && c.matcher != nil && c.matcher.Exclusions()
}
