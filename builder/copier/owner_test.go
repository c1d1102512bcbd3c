package copier

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCopyOwnership checks who owns what after a copy, against the classic builder:
// 0:0 by default for the context, the source's owners for --from, the --chown owner
// otherwise; parents created for a file get the file's owner, parents created for a
// directory's destination get 0:0; existing directories are left alone.
func TestCopyOwnership(t *testing.T) {
	t.Parallel()
	needRoot(t)
	owned := []spec{
		"f=file owner=1000:1001",
		"suid=x mode=4755 owner=1000:1001",
		"d/inner=i owner=7:8",
		"d/link->inner",
		"d owner=1000:1001 mode=0750",
	}
	chown := &Owner{UID: 1234, GID: 5678}
	cases := []copyCase{
		{name: "context-default-root", context: owned,
			req: Request{Sources: []string{"f", "suid", "d"}, Dest: "/a/b/"}},
		{name: "context-file-parents", context: owned,
			req: Request{Sources: []string{"f"}, Dest: "/p/q/f"}},
		{name: "from-preserves", context: owned, from: true,
			req: Request{Sources: []string{"f", "suid", "d"}, Dest: "/a/b/"}},
		{name: "from-dir-preserves", context: owned, from: true,
			req: Request{Sources: []string{"d"}, Dest: "/x/y"}},
		{name: "chown-file-parents", context: owned, root: []spec{"a mode=0700 owner=3:3"},
			req: Request{Sources: []string{"f"}, Dest: "/a/b/c/", Chown: chown}},
		{name: "chown-dir-new-dest", context: owned,
			req: Request{Sources: []string{"d"}, Dest: "/p/q/dst", Chown: chown}},
		{name: "chown-dir-existing-dest", context: owned, root: []spec{"dst mode=0711 owner=9:9"},
			req: Request{Sources: []string{"d"}, Dest: "/dst", Chown: chown}},
		{name: "chown-from", context: owned, from: true,
			req: Request{Sources: []string{"d", "suid"}, Dest: "/o/", Chown: chown}},
		{name: "chown-keeps-setuid", context: []spec{"s=x mode=6755 owner=0:0"},
			req: Request{Sources: []string{"s"}, Dest: "/s", Chown: chown}},
	}
	for _, tc := range cases {
		tc.owners = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			golden(t, "owner/"+tc.name, tc.run(t))
		})
	}
}

// TestCopyTimes checks that copied files, symlinks and directories keep their source
// mtime truncated to the second (the classic builder's tar headers), while parents
// created on the way get the current time.
func TestCopyTimes(t *testing.T) {
	t.Parallel()
	ctxDir, root := t.TempDir(), t.TempDir()
	makeTree(t, ctxDir,
		"d/f=x",
		"d/sub/g=y mtime=1100000000",
		"d/link->f",
		"d/sub mtime=1200000000",
		"d mtime=1300000000",
		"top=z",
	)
	frac := time.Unix(1000000000, 700_000_000)
	for _, p := range []string{"d/f", "top"} {
		if err := os.Chtimes(filepath.Join(ctxDir, p), frac, frac); err != nil {
			t.Fatal(err)
		}
	}
	linkTime := time.Unix(1400000000, 0)
	if err := lutimes(filepath.Join(ctxDir, "d/link"), linkTime); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(ctxDir, "d"), time.Unix(1300000000, 0), time.Unix(1300000000, 0)); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)

	src := Source{Root: ctxDir, Context: true}
	for _, req := range []Request{
		{Sources: []string{"d"}, Dest: "/new/parent/d", Chown: self()},
		{Sources: []string{"top"}, Dest: "/other/parent/", Chown: self()},
	} {
		_, err := Copy(context.Background(), src, root, req)
		skipIfUnprivileged(t, err)
		if err != nil {
			t.Fatal(err)
		}
	}

	want := map[string]int64{
		"new/parent/d/f":     1000000000,
		"new/parent/d/link":  1400000000,
		"new/parent/d/sub":   1200000000,
		"new/parent/d/sub/g": 1100000000,
		"other/parent/top":   1000000000,
	}
	for p, sec := range want {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.ModTime(); !got.Equal(time.Unix(sec, 0)) {
			t.Errorf("%s: mtime %v, want %v", p, got, time.Unix(sec, 0))
		}
	}
	for _, p := range []string{"new", "new/parent", "new/parent/d", "other", "other/parent"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().Before(start) {
			t.Errorf("%s: created directory has mtime %v, want the current time", p, fi.ModTime())
		}
	}
}
