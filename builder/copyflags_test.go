package builder_test

import (
	"testing"
)

// COPY/ADD flags of BuildKit's dialect in real builds; the expectations were checked
// against buildkitd v0.34.2 (see docs/dockerfile.md).
func TestCopyFlagsBuild(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: `FROM BUSYBOX
RUN mkdir -p /out/real /out/app && ln -s real /out/link && chmod 700 /out/app && mkdir /out/existing
COPY --exclude=*.md --exclude=sub/*.txt dir /ex/
ADD --exclude=*.txt dir /add/
COPY --chmod=u+x,go-w dir/sub/x.txt dir/keep.md /sym/
COPY --chmod=a=rX dir /symX
COPY --link a.txt /out/link/
COPY --link a.txt /out/app/
COPY --link a.txt /out/existing
COPY a.txt /out/real/plain
`,
		files: map[string]string{"a.txt": "A", "dir/keep.md": "K", "dir/top.txt": "T", "dir/sub/x.txt": "X", "dir/sub/y.go": "Y"},
	})
	wantFiles(t, files(t, img), map[string]string{
		"/ex/top.txt":         "f 0644 0:0 T",
		"/ex/keep.md":         "",
		"/ex/sub/x.txt":       "",
		"/ex/sub/y.go":        "f 0644 0:0 Y",
		"/add/keep.md":        "f 0644 0:0 K",
		"/add/top.txt":        "",
		"/add/sub/x.txt":      "f 0644 0:0 X",
		"/sym/x.txt":          "f 0744 0:0 X",
		"/sym/keep.md":        "f 0744 0:0 K",
		"/symX/keep.md":       "f 0444 0:0 K",
		"/symX/sub":           "d 0555 0:0",
		"/out/link/a.txt":     "f 0644 0:0 A",
		"/out/real/a.txt":     "",
		"/out/real/plain":     "f 0644 0:0 A",
		"/out/app":            "d 0755 0:0",
		"/out/existing":       "f 0644 0:0 A",
		"/out/existing/a.txt": "",
	})
}

// The flags are part of a COPY's cache key, and a file --exclude leaves out is not: a
// changed excluded file hits, a changed --exclude or --chmod value misses.
func TestCacheCopyFlags(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"d/a.txt": "A", "d/b.md": "B"})
	df := func(flags string) string { return "FROM BUSYBOX\nCOPY " + flags + " d /x/\n" }
	cw.build(t, df("--exclude=*.md"), nil)
	cw.write(t, map[string]string{"d/b.md": "B2"})
	if again := cw.build(t, df("--exclude=*.md"), nil); len(again.misses) != 0 {
		t.Errorf("excluded file changed: misses %q, want none", again.misses)
	}
	for _, flags := range []string{"--exclude=*.txt", "--exclude=*.md --chmod=u+x", "--exclude=*.md --link"} {
		got := cw.build(t, df(flags), nil)
		if len(got.misses) != 1 {
			t.Errorf("%s: misses %q, want the COPY", flags, got.misses)
		}
	}
}
