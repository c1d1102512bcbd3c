package builder_test

import (
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
)

// TestCopyFastPathSameImage builds each Dockerfile twice: as written, where its last
// COPY/ADD takes the fast path (its files are not written into the root), and with a
// RUN after it, which makes the same COPY take the slow path. The layers up to and
// including the COPY's must be the same, byte for byte.
func TestCopyFastPathSameImage(t *testing.T) {
	w := newWorld(t)
	files := map[string]string{
		"a.txt": "A", "dir/x": "X", "dir/sub/y": "Y", "dir/skip.log": "s",
		"one.md": "1", "two.md": "2", "ignored.txt": "i", ".dockerignore": "ignored.txt\n",
	}
	const build = "FROM BUSYBOX AS build\nRUN mkdir -p /out/sub && echo built > /out/artifact && ln -s artifact /out/link && ln /out/artifact /out/sub/hard\n"
	cases := []struct {
		name    string
		df      string // up to and including the COPY under test
		planned bool   // the COPY is expected to take the fast path
	}{
		{"copy-dir", "FROM BUSYBOX\nCOPY dir /dst\n", true},
		{"copy-context-dockerignore", "FROM BUSYBOX\nCOPY . /ctx/\n", true},
		{"chown-by-name", "FROM BUSYBOX\nCOPY --chown=app:extra dir /owned\n", true},
		{"chown-by-id-chmod", "FROM BUSYBOX\nCOPY --chown=7:8 --chmod=0750 dir *.md /o/\n", true},
		{"from-stage", build + "FROM BUSYBOX\nCOPY --from=build /out /from\n", true},
		{"heredoc", "FROM BUSYBOX\nCOPY <<EOF a.txt /hd/\nhello\nEOF\n", true},
		{"into-existing-dir-through-workdir", "FROM BUSYBOX\nWORKDIR /home/app\nCOPY a.txt dir ./\n", true},
		{"exclude", "FROM BUSYBOX\nCOPY --exclude=*.log dir /ex/\n", true},
		{"add-local", "FROM BUSYBOX\nADD dir /added/\n", true},
		{"link", "FROM BUSYBOX\nCOPY --link dir /l/\n", false},
		{"read-by-later-stage", "FROM BUSYBOX AS one\nCOPY dir /d\nFROM BUSYBOX\nCOPY --from=one /d /e\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fast, fastEvents := mustBuild(t, w, buildCase{dockerfile: tc.df + "ENV AFTER=1\n", files: files, repro: true})
			slow, slowEvents := mustBuild(t, w, buildCase{dockerfile: tc.df + "RUN true\n", files: files, repro: true})
			if got := planned(fastEvents); got != tc.planned {
				t.Errorf("fast path taken = %t, want %t", got, tc.planned)
			}
			if planned(slowEvents) && !strings.Contains(tc.df, "--from=one") {
				t.Errorf("the COPY before a RUN took the fast path")
			}
			fl, err := fast.Layers()
			if err != nil {
				t.Fatal(err)
			}
			sl, err := slow.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(sl) < len(fl) {
				t.Fatalf("slow build has %d layers, fast %d", len(sl), len(fl))
			}
			for i := range fl {
				fd, _ := fl[i].DiffID()
				sd, _ := sl[i].DiffID()
				if fd != sd {
					t.Errorf("layer %d: fast path %s, slow path %s", i, fd, sd)
				}
			}
		})
	}
}

// planned reports whether a build's events say a COPY took the fast path.
func planned(events []builder.Event) bool {
	for _, e := range events {
		if d, ok := e.(builder.Debug); ok && strings.HasPrefix(d.Message, "Layer of planned files:") {
			return true
		}
	}
	return false
}
