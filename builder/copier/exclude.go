package copier

import (
	"fmt"
	"path"
	"strings"

	"github.com/moby/patternmatcher"
)

// newExcluder compiles the --exclude patterns of a COPY or ADD; nil when there are none.
func newExcluder(patterns []string) (*patternmatcher.PatternMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("invalid --exclude pattern: %w", err)
	}
	return pm, nil
}

// leftOut reports whether rel (relative to the source root), found below the source
// item base (also relative to the source root), is left out of the copy by
// .dockerignore or by --exclude, and, for a directory left out, whether it must still
// be searched because a "!" pattern may bring back something below it.
//
// As in BuildKit, --exclude patterns are matched against the path relative to each
// source as the copy finds it (after wildcard expansion), with .dockerignore's syntax
// and rules; a source itself is never excluded, only what lies below it.
func (c *copier) leftOut(base, rel string) (out, search bool) {
	if c.excluded(rel) {
		out, search = true, !c.src.NoExceptions
	}
	if c.exclude == nil {
		return out, search
	}
	sub := rel
	if base != "." && base != "" {
		sub = strings.TrimPrefix(rel, base+"/")
	}
	sub = path.Clean(sub)
	if m, err := c.exclude.MatchesOrParentMatches(sub); err == nil && m {
		out = true
		search = search || c.exclude.Exclusions()
	}
	return out, search
}
