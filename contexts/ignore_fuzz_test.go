package contexts

import (
	"bytes"
	"strings"
	"testing"

	"github.com/moby/patternmatcher/ignorefile"
)

// FuzzDockerignore reads arbitrary .dockerignore content as FromDir does and matches
// arbitrary paths against it: it may be refused, but must never panic or hang, and a
// path the patterns exclude stays excluded however it is spelled ("a" and "./a/").
func FuzzDockerignore(f *testing.F) {
	for _, seed := range []struct{ ignore, path string }{
		{"*\n!Dockerfile\n", "Dockerfile"},
		{"**/*.go\n!vendor/**\n", "vendor/a/b.go"},
		{"# comment\n\n/abs\n../up\n", "abs"},
		{"[a-\n", "a"},
		{"a/**/b\n!a/x/b\n", "a/x/y/b"},
		{"\\#literal\n*.[ch]\n", "x.c"},
	} {
		f.Add(seed.ignore, seed.path)
	}
	f.Fuzz(func(t *testing.T, ignore, path string) {
		patterns, err := ignorefile.ReadAll(bytes.NewReader([]byte(ignore)))
		if err != nil {
			return
		}
		c := &Context{Dir: "/nonexistent"}
		if err := c.setPatterns(patterns); err != nil {
			return
		}
		got := c.Excluded(path)
		_ = c.HasExceptions()
		if clean := strings.Trim(path, "/"); clean != "" && !strings.Contains(clean, "..") && !strings.Contains(clean, "//") &&
			!strings.HasPrefix(clean, "./") && clean != "." && c.Excluded("./"+clean+"/") != got {
			t.Errorf("Excluded(%q) = %v but Excluded(%q) differs", path, got, "./"+clean+"/")
		}
	})
}
