package copier

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// copyCase is one COPY/ADD run against a fresh context and build root.
type copyCase struct {
	name    string
	context []spec  // the build context (or --from root)
	ignore  string  // .dockerignore content, written into the context
	root    []spec  // the build root before the copy
	from    bool    // the source is a --from root, not the build context
	req     Request // Chown nil becomes self() unless owners is set
	owners  bool    // compare owners (needs root); Chown stays as given
	wantErr string  // the error's text must contain this; "" means success
	// wantTouched, when set, is compared with Copy's result.
	wantTouched []string
}

// run performs the case and returns the build root's listing, or "" after an
// expected error.
func (tc copyCase) run(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	ctxDir, root := filepath.Join(base, "context"), filepath.Join(base, "root")
	for _, d := range []string{ctxDir, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := sourceTree(t, ctxDir, tc.ignore, tc.from, tc.context...)
	makeTree(t, root, tc.root...)
	req := tc.req
	if req.Chown == nil && !tc.owners {
		req.Chown = self()
	}
	req.TempDir = base

	touched, err := Copy(context.Background(), src, root, req)
	skipIfUnprivileged(t, err)
	if tc.wantErr != "" {
		if err == nil {
			t.Fatalf("Copy succeeded, want error containing %q", tc.wantErr)
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Fatalf("Copy error = %q, want it to contain %q", err, tc.wantErr)
		}
		return ""
	}
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if tc.wantTouched != nil {
		if diff := cmp.Diff(tc.wantTouched, touched); diff != "" {
			t.Errorf("touched paths (-want +got):\n%s", diff)
		}
	}
	// Nothing may appear beside the context and the root.
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "context" && e.Name() != "root" {
			t.Errorf("Copy left %s outside the build root", e.Name())
		}
	}
	return listing(t, root, listOpts{owners: tc.owners})
}

func TestCopy(t *testing.T) {
	t.Parallel()
	ctxFiles := []spec{
		"a.txt=alpha",
		"b.txt=bravo mode=0600",
		"c.md=charlie",
		"src/one=1",
		"src/sub/two=2 mode=0640",
		"src/sub mode=0750",
		"src/link->one",
	}
	cases := []copyCase{
		{name: "file-to-new-path", context: ctxFiles,
			req:         Request{Sources: []string{"a.txt"}, Dest: "/b"},
			wantTouched: []string{"/b"}},
		{name: "file-to-slash-dir", context: ctxFiles,
			req:         Request{Sources: []string{"a.txt"}, Dest: "/new/dir/"},
			wantTouched: []string{"/new", "/new/dir", "/new/dir/a.txt"}},
		{name: "file-to-existing-dir", context: ctxFiles, root: []spec{"existing mode=0700"},
			req:         Request{Sources: []string{"a.txt"}, Dest: "/existing"},
			wantTouched: []string{"/existing/a.txt"}},
		{name: "file-relative-dest", context: ctxFiles, root: []spec{"app"},
			req: Request{Sources: []string{"a.txt"}, Dest: "renamed", WorkDir: "/app"}},
		{name: "file-dot-dest", context: ctxFiles, root: []spec{"app"},
			req: Request{Sources: []string{"./a.txt"}, Dest: ".", WorkDir: "/app"}},
		{name: "leading-slash-source", context: ctxFiles,
			req: Request{Sources: []string{"/src/one"}, Dest: "/x/"}},
		{name: "dir-contents", context: ctxFiles,
			req:         Request{Sources: []string{"src"}, Dest: "/dst"},
			wantTouched: []string{"/dst", "/dst/link", "/dst/one", "/dst/sub", "/dst/sub/two"}},
		{name: "dir-merge", context: ctxFiles,
			root: []spec{"dst/keep=old", "dst/one=old-one", "dst/sub mode=0700", "dst/sub/three=3"},
			req:  Request{Sources: []string{"src/"}, Dest: "/dst/"}},
		{name: "context-root", context: []spec{"x=1", "d/y=2"},
			req: Request{Sources: []string{"."}, Dest: "/ctx"}},
		{name: "multi-source", context: ctxFiles,
			req: Request{Sources: []string{"a.txt", "src"}, Dest: "/m/"}},
		{name: "multi-source-dot", context: ctxFiles, root: []spec{"app"},
			req:     Request{Sources: []string{"a.txt", "b.txt"}, Dest: ".", WorkDir: "/app"},
			wantErr: "When using COPY with more than one source file, the destination must be a directory and end with a /"},
		{name: "file-to-slash-dot-missing", context: ctxFiles,
			req: Request{Sources: []string{"a.txt"}, Dest: "/newdir/."}},
		{name: "multi-source-no-slash", context: ctxFiles,
			req:     Request{Sources: []string{"a.txt", "b.txt"}, Dest: "/m"},
			wantErr: "When using COPY with more than one source file, the destination must be a directory and end with a /"},
		{name: "wildcard-one-match-no-slash", context: ctxFiles,
			req: Request{Sources: []string{"*.md"}, Dest: "/single"}},
		{name: "wildcard-top-level", context: ctxFiles,
			req: Request{Sources: []string{"*.txt"}, Dest: "/w/"}},
		{name: "wildcard-nested", context: ctxFiles,
			req: Request{Sources: []string{"src/*"}, Dest: "/w/"}},
		{name: "wildcard-class", context: ctxFiles,
			req: Request{Sources: []string{"[ab].txt"}, Dest: "/w/"}},
		{name: "wildcard-no-match", context: ctxFiles,
			req:     Request{Sources: []string{"*.nothing"}, Dest: "/w/"},
			wantErr: "COPY failed: no source files were specified"},
		{name: "missing", context: ctxFiles,
			req:     Request{Sources: []string{"nope"}, Dest: "/x"},
			wantErr: "COPY failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist"},
		{name: "missing-from", context: ctxFiles, from: true,
			req:     Request{Sources: []string{"/nope"}, Dest: "/x"},
			wantErr: "COPY failed: stat nope: file does not exist"},
		{name: "missing-add", context: ctxFiles,
			req:     Request{Sources: []string{"nope"}, Dest: "/x", Add: true},
			wantErr: "ADD failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist"},
		{name: "outside-context", context: ctxFiles,
			req:     Request{Sources: []string{"../root"}, Dest: "/x"},
			wantErr: "forbidden path outside the build context: ../root"},
		{name: "url-in-copy", context: ctxFiles,
			req:     Request{Sources: []string{"http://127.0.0.1:1/x"}, Dest: "/x"},
			wantErr: "COPY failed: source can't be a URL for COPY"},

		// .dockerignore
		{name: "ignored-file", context: ctxFiles, ignore: "a.txt\n",
			req:     Request{Sources: []string{"a.txt"}, Dest: "/x"},
			wantErr: "COPY failed: file not found in build context or excluded by .dockerignore: stat a.txt: file does not exist"},
		{name: "ignored-wildcard", context: ctxFiles, ignore: "a.txt\n",
			req: Request{Sources: []string{"*.txt"}, Dest: "/w/"}},
		{name: "ignored-in-dir", context: ctxFiles, ignore: "src/sub\n",
			req: Request{Sources: []string{"src"}, Dest: "/d"}},
		{name: "ignored-with-exception", ignore: "dir\n!dir/keep/this\n",
			context: []spec{"dir/drop=x", "dir/keep/this=kept", "dir/keep/not=x", "top=t"},
			req:     Request{Sources: []string{"."}, Dest: "/d/"}},
		{name: "ignored-dir-with-exception-named", ignore: "dir\n!dir/keep\n",
			context: []spec{"dir/drop=x", "dir/keep=kept"},
			req:     Request{Sources: []string{"dir"}, Dest: "/d/"}},
		{name: "symlink-to-ignored", context: append([]spec{"tolink->a.txt"}, ctxFiles...), ignore: "a.txt\n",
			req:     Request{Sources: []string{"tolink"}, Dest: "/x"},
			wantErr: "COPY failed: file not found in build context or excluded by .dockerignore: stat tolink: file does not exist"},

		// symlinks
		{name: "top-level-symlink-followed", context: append([]spec{"l->a.txt", "dl->src"}, ctxFiles...),
			req: Request{Sources: []string{"l", "dl"}, Dest: "/s/"}},
		{name: "symlink-escape-absolute", context: []spec{"evil->/etc/passwd"},
			req:     Request{Sources: []string{"evil"}, Dest: "/x"},
			wantErr: "stat evil: file does not exist"},
		{name: "symlink-escape-relative", context: []spec{"evil->../../../../../../etc/passwd"},
			req:     Request{Sources: []string{"evil"}, Dest: "/x"},
			wantErr: "stat evil: file does not exist"},
		{name: "symlink-escape-in-context", context: []spec{"etc/passwd=context-own", "evil->/etc/passwd"},
			req: Request{Sources: []string{"evil"}, Dest: "/x"}},
		{name: "symlink-escape-wildcard", context: []spec{"evil->/etc/passwd"},
			req:     Request{Sources: []string{"ev*"}, Dest: "/x/"},
			wantErr: "stat evil: file does not exist"},
		{name: "symlink-escape-kept-in-dir", context: []spec{"d/evil->/etc/passwd", "d/up->../../../../etc"},
			req: Request{Sources: []string{"d"}, Dest: "/x"}},
		{name: "dest-symlink-to-slash", context: ctxFiles, root: []spec{"escape->/"},
			req: Request{Sources: []string{"a.txt"}, Dest: "/escape/x"}},
		{name: "dest-symlink-dotdot", context: ctxFiles, root: []spec{"deep/up->../../../.."},
			req: Request{Sources: []string{"src"}, Dest: "/deep/up/y"}},
		{name: "dest-final-symlink-followed", context: ctxFiles, root: []spec{"bin/dash=old", "bin/sh->dash"},
			req:         Request{Sources: []string{"a.txt"}, Dest: "/bin/sh"},
			wantTouched: []string{"/bin/dash"}},
		{name: "dest-dangling-symlink-dir", context: ctxFiles, root: []spec{"opt->/nowhere/deeper"},
			req: Request{Sources: []string{"a.txt"}, Dest: "/opt/"}},
		{name: "dir-replaces-symlink-inside", context: []spec{"lib/x=1"}, root: []spec{"usr/lib", "lib->usr/lib"},
			req: Request{Sources: []string{"."}, Dest: "/"}},

		// replacing
		{name: "file-over-file", context: ctxFiles, root: []spec{"f=old", "g=>f"},
			req: Request{Sources: []string{"a.txt"}, Dest: "/f"}},
		{name: "file-over-dir-entry", context: ctxFiles, root: []spec{"d/a.txt/inner=x"},
			req: Request{Sources: []string{"a.txt"}, Dest: "/d/"}},
		{name: "dir-over-file", context: ctxFiles, root: []spec{"f=old"},
			req:     Request{Sources: []string{"src"}, Dest: "/f"},
			wantErr: "failed to copy files: failed to copy directory: mkdir /f: not a directory"},
		{name: "file-under-file", context: ctxFiles, root: []spec{"f=old"},
			req:     Request{Sources: []string{"a.txt"}, Dest: "/f/x"},
			wantErr: "not a directory"},
		{name: "dir-entry-over-file", context: ctxFiles, root: []spec{"d/sub=file"},
			req: Request{Sources: []string{"src"}, Dest: "/d"}},

		// modes
		{name: "modes-kept", context: []spec{"m/suid=x mode=4755", "m/sgid=x mode=2711", "m/sticky mode=1777", "m/private=x mode=0400"},
			req: Request{Sources: []string{"m"}, Dest: "/m"}},
		{name: "chmod", context: ctxFiles,
			req: Request{Sources: []string{"src", "a.txt"}, Dest: "/c/", Chmod: modePtr(0o751)}},
		{name: "hardlinks", context: []spec{"h/a=same", "h/b=>h/a", "h/sub/c=>h/a", "h/other=diff"},
			req: Request{Sources: []string{"h"}, Dest: "/h"}},
		{name: "hardlinks-separate-sources", context: []spec{"a=same", "b=>a"},
			req: Request{Sources: []string{"a", "b"}, Dest: "/h/"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.run(t)
			if tc.wantErr == "" {
				golden(t, "copy/"+tc.name, got)
			}
		})
	}
}

func modePtr(m os.FileMode) *Chmod { return OctalChmod(m) }
