package copier

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The BuildKit-dialect flags of COPY and ADD. The golden listings were checked against
// buildkitd v0.34.2 (see docs/dockerfile.md).
func TestCopyFlags(t *testing.T) {
	t.Parallel()
	// The tree of BuildKit's own testExcludedFilesOnCopy.
	media := []spec{
		"dir1/file-101.png=2", "dir1/file-102.txt=3", "dir1/file-103.jpeg=4",
		"dir2/file-201.pdf=6", "dir2/file-202.jpeg=7", "dir2/file-203.png=8",
		"dir3/file-301.mp3=9", "dir3/file-302.mpeg=10",
		"dir4/file-401.txt=11", "dir4/file-402.txt->file-401.txt", "dir4/file-403.txt->file-404.txt",
	}
	tree := []spec{"x/y/a.txt=A", "x/y/b.md=B", "x/z/c.txt=C", "x mode=0750", "x/y mode=0700",
		"src/app/main.go=M", "src/lib/util.go=U", "src/lib/deep/d.go=D", "src/readme=R"}
	linkRoot := []spec{"out/real", "out/app mode=0700", "out/existing/old=o", "out/e2/keep=k",
		"out/link->real", "out/link2->real", "out/file=old"}
	modes := []spec{"m/f=x mode=0644", "m/x=y mode=0750", "m/d mode=0700", "m/d/g=z mode=0600"}
	cases := []copyCase{
		// --exclude: relative to each source, .dockerignore's syntax.
		{name: "exclude-nested", context: media,
			req: Request{Sources: []string{"."}, Dest: "/1", Exclude: []string{"*/*.png", "*/*.jpeg"}}},
		{name: "exclude-top-level-only", context: media,
			req: Request{Sources: []string{"."}, Dest: "/1", Exclude: []string{"*.txt"}}},
		{name: "exclude-dir-source", context: media,
			req: Request{Sources: []string{"dir3/"}, Dest: "/3/", Exclude: []string{"*.mp3"}}},
		{name: "exclude-wildcard-sources", context: media,
			req: Request{Sources: []string{"dir*"}, Dest: "/4/", Exclude: []string{"*.mp3", "*.jpeg", "*.png", "*.pdf", "*.txt"}}},
		{name: "exclude-everything", context: media,
			req: Request{Sources: []string{"dir*"}, Dest: "/6/", Exclude: []string{"*"}}},
		{name: "exclude-directory", context: media,
			req: Request{Sources: []string{"."}, Dest: "/d/", Exclude: []string{"dir1", "dir2/"}}},
		{name: "exclude-double-star", context: media,
			req: Request{Sources: []string{"."}, Dest: "/d/", Exclude: []string{"**/*.txt"}}},
		{name: "exclude-exception", context: media,
			req: Request{Sources: []string{"."}, Dest: "/d/", Exclude: []string{"dir1", "!dir1/file-102.txt", "dir[234]"}}},
		{name: "exclude-never-the-source-itself", context: media,
			req: Request{Sources: []string{"dir3/file-301.mp3"}, Dest: "/s/", Exclude: []string{"*.mp3", "file-301.mp3"}}},
		{name: "exclude-with-dockerignore", context: media, ignore: "dir2\n",
			req: Request{Sources: []string{"."}, Dest: "/d/", Exclude: []string{"dir1"}}},
		{name: "exclude-from", context: media, from: true,
			req: Request{Sources: []string{"/dir1"}, Dest: "/f/", Exclude: []string{"*.png"}}},
		{name: "exclude-bad-pattern", context: media,
			req:     Request{Sources: []string{"."}, Dest: "/d/", Exclude: []string{"[a-"}},
			wantErr: "invalid --exclude pattern"},

		// --parents: paths keep their place below the pivot ("/./") or the source root.
		{name: "parents-file", context: tree, req: Request{Sources: []string{"x/y/a.txt"}, Dest: "/p1/", Parents: true}},
		{name: "parents-wildcards", context: tree, req: Request{Sources: []string{"x/*/*.txt"}, Dest: "/p2/", Parents: true}},
		{name: "parents-pivot-dir", context: tree, req: Request{Sources: []string{"./src/./app"}, Dest: "/p3/", Parents: true}},
		{name: "parents-double-star", context: tree, req: Request{Sources: []string{"src/./**/*.go"}, Dest: "/p4/", Parents: true}},
		{name: "parents-dir-no-slash", context: tree, req: Request{Sources: []string{"x"}, Dest: "/p5", Parents: true}},
		{name: "parents-two-sources", context: tree, req: Request{Sources: []string{"x/y/a.txt", "src/app/main.go"}, Dest: "/p6/", Parents: true}},
		{name: "parents-exclude-relative-to-root", context: tree, req: Request{Sources: []string{"x/y"}, Dest: "/p7/", Parents: true, Exclude: []string{"*.md"}}},
		{name: "parents-exclude-relative-to-pivot", context: tree, req: Request{Sources: []string{"x/./y"}, Dest: "/p8/", Parents: true, Exclude: []string{"*.md", "y/*.md"}}},
		{name: "parents-trailing-slash-pattern", context: tree, req: Request{Sources: []string{"src/*/"}, Dest: "/p9/", Parents: true}},
		{name: "parents-no-match-wildcard", context: tree, req: Request{Sources: []string{"x/*.none"}, Dest: "/p10/", Parents: true}},
		{name: "parents-missing", context: tree, req: Request{Sources: []string{"x/nothere"}, Dest: "/p11/", Parents: true},
			wantErr: "file not found in build context or excluded by .dockerignore: x/nothere: file does not exist"},
		{name: "parents-dockerignore", context: tree, ignore: "x/z\n", req: Request{Sources: []string{"x"}, Dest: "/p12/", Parents: true}},

		// --link: the copy does not see the build root; its result is laid over it.
		{name: "link-symlink-dir-replaced", context: []spec{"f=F"}, root: linkRoot,
			req: Request{Sources: []string{"f"}, Dest: "/out/link/", Link: true}},
		{name: "nolink-symlink-dir-followed", context: []spec{"f=F"}, root: linkRoot,
			req: Request{Sources: []string{"f"}, Dest: "/out/link/"}},
		{name: "link-parent-metadata-replaced", context: []spec{"f=F"}, root: linkRoot,
			req: Request{Sources: []string{"f"}, Dest: "/out/app/", Link: true}},
		{name: "link-existing-dir-replaced-by-file", context: []spec{"f=F"}, root: linkRoot,
			req: Request{Sources: []string{"f"}, Dest: "/out/existing", Link: true}},
		{name: "link-dirs-merge", context: []spec{"d/sub/g=G"}, root: linkRoot,
			req: Request{Sources: []string{"d"}, Dest: "/out/e2", Link: true}},
		{name: "link-hardlinks-and-exclude", context: []spec{"h/a=same", "h/b=>h/a", "h/c.txt=x"}, root: linkRoot,
			req: Request{Sources: []string{"h"}, Dest: "/out/link2/x", Link: true, Exclude: []string{"*.txt"}}},

		// --chmod: symbolic modes apply to each path's own mode.
		{name: "chmod-symbolic", context: modes,
			req: Request{Sources: []string{"m"}, Dest: "/m", Chmod: mustChmod(t, "u+x,go-w")}},
		{name: "chmod-symbolic-X", context: modes,
			req: Request{Sources: []string{"m"}, Dest: "/m", Chmod: mustChmod(t, "a=rX")}},
		{name: "chmod-symbolic-set", context: modes,
			req: Request{Sources: []string{"m/f", "m/d"}, Dest: "/n/", Chmod: mustChmod(t, "u=rwx,g=rx,o=,+t")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.run(t)
			if tc.wantErr == "" {
				golden(t, "flags/"+tc.name, got)
			}
		})
	}
}

func mustChmod(t *testing.T, s string) *Chmod {
	t.Helper()
	m, err := ParseChmod(s)
	if err != nil {
		t.Fatalf("ParseChmod(%q): %v", s, err)
	}
	return m
}

func TestParseChmod(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		old     os.FileMode
		want    os.FileMode
		wantErr string
	}{
		{in: "0755", old: 0o600, want: 0o755},
		{in: "4755", old: 0o600, want: 0o755 | os.ModeSetuid},
		{in: "u+x", old: 0o644, want: 0o744},
		{in: "go-w", old: 0o666, want: 0o644},
		{in: "a+X", old: 0o644, want: 0o644},
		{in: "a+X", old: os.ModeDir | 0o600, want: 0o711},
		{in: "u+s,g+s,+t", old: 0o755, want: 0o755 | os.ModeSetuid | os.ModeSetgid | os.ModeSticky},
		{in: "u=rw,go=", old: 0o777, want: 0o600},
		{in: "10000", wantErr: "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"},
		{in: "0999", wantErr: "invalid chmod parameter: '0999'"},
		{in: "u+q", wantErr: "invalid --chmod value"},
		{in: "", wantErr: "invalid"},
	}
	for _, tc := range cases {
		m, err := ParseChmod(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseChmod(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseChmod(%q): %v", tc.in, err)
			continue
		}
		if got := m.apply(tc.old); got != tc.want {
			t.Errorf("ParseChmod(%q).apply(%v) = %v, want %v", tc.in, tc.old, got, tc.want)
		}
	}
}

// TestSelectExclude checks that the cache key's view of a COPY leaves out what
// --exclude leaves out.
func TestSelectExclude(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	makeTree(t, dir, "d/a.txt=1", "d/b.md=2", "d/sub/c.txt=3")
	var got []string
	err := Select(context.Background(), Source{Root: dir, Context: true},
		Request{Sources: []string{"d"}, Exclude: []string{"*.txt"}}, func(s Selected) error {
			got = append(got, s.Rel)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"d", "d/b.md", "d/sub", "d/sub/c.txt"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Select (-want +got):\n%s", diff)
	}
}

// TestSelectParents checks that the cache key's view of a COPY --parents is the paths
// it copies, each named by its place below the destination, with the directories on
// the way.
func TestSelectParents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	makeTree(t, dir, "src/app/main.go=M", "src/lib/deep/d.go=D", "src/readme=R")
	var got []string
	err := Select(context.Background(), Source{Root: dir, Context: true},
		Request{Sources: []string{"src/./**/*.go"}, Parents: true}, func(s Selected) error {
			got = append(got, s.Rel+" as "+s.Name)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"src/app as app", "src/app/main.go as app/main.go",
		"src/lib as lib", "src/lib/deep as lib/deep", "src/lib/deep/d.go as lib/deep/d.go"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Select (-want +got):\n%s", diff)
	}
}
