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
	// The candidate is the greatest entry <= p.
	n := sort.SearchStrings(i.paths, p)
	if n < len(i.paths) && i.paths[n] == p {
		return true
	}
	for j := n - 1; j >= 0; j-- {
		if under(p, i.paths[j]) {
			return true
		}
		// Entries sharing no prefix with p cannot contain it; stop at the first
		// entry that is not a string prefix of p.
		if !strings.HasPrefix(p, i.paths[j]) {
			break
		}
	}
	return false
}

// under reports whether p equals dir or lies below it.
func under(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
