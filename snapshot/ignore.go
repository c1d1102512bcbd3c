package snapshot

import (
	"path"
	"sort"
	"strings"
)

// Ignore is an immutable set of paths, in image terms ("/proc", "/var/run"), that are
// never extracted over, snapshotted or deleted. A path is ignored when it equals an
// entry or lies below one.
type Ignore struct {
	paths []string // cleaned, absolute, sorted, no entry below another
}

// NewIgnore returns the set of the given paths (cleaned; relative ones made absolute).
func NewIgnore(paths ...string) *Ignore {
	return (&Ignore{}).With(paths...)
}

// With returns a new set holding i's paths and the given ones.
func (i *Ignore) With(paths ...string) *Ignore {
	all := append([]string(nil), i.Paths()...)
	for _, p := range paths {
		if p == "" {
			continue
		}
		all = append(all, path.Clean("/"+p))
	}
	sort.Strings(all)
	out := &Ignore{}
	for _, p := range all {
		if n := len(out.paths); n > 0 && under(p, out.paths[n-1]) {
			continue
		}
		out.paths = append(out.paths, p)
	}
	return out
}

// Paths returns the set's paths, sorted. A nil set has none.
func (i *Ignore) Paths() []string {
	if i == nil {
		return nil
	}
	return i.paths
}

// Match reports whether p (an image path) is ignored. A nil set ignores nothing.
func (i *Ignore) Match(p string) bool {
	if i == nil || len(i.paths) == 0 {
		return false
	}
	p = path.Clean("/" + p)
	// p is ignored when p or one of its ancestors is an entry. Looking each one up
	// costs O(depth * log n) and, unlike scanning neighbours in sort order, is not
	// fooled by entries such as "/a-b" sorting between "/a" and "/a/x".
	for {
		if i.has(p) {
			return true
		}
		if p == "/" {
			return false
		}
		p = path.Dir(p)
	}
}

// has reports whether p is exactly one of the set's entries.
func (i *Ignore) has(p string) bool {
	n := sort.SearchStrings(i.paths, p)
	return n < len(i.paths) && i.paths[n] == p
}

// within reports whether some entry lies strictly below dir (an image path). Walks
// use it to skip per-child Match calls in the many directories that hold no ignored
// path, and removals use it to know a directory must be emptied, not deleted.
func (i *Ignore) within(dir string) bool {
	if i == nil {
		return false
	}
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	n := sort.SearchStrings(i.paths, prefix)
	if n < len(i.paths) && i.paths[n] == "/" {
		n++ // "/" contains dir but does not lie below it
	}
	return n < len(i.paths) && strings.HasPrefix(i.paths[n], prefix)
}

// under reports whether p equals dir or lies below it.
func under(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
