package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRoundTrip checks the whole cycle: what Diff finds and WriteLayer writes,
// extracted onto a copy of the base, reproduces the changed tree.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		t.Run(string(c.mediaType()), func(t *testing.T) {
			t.Parallel()
			roundTrip(t, c)
		})
	}
}

func roundTrip(t *testing.T, c Compression) {
	ctx := context.Background()
	base := []ent{
		dir("etc/", 0o755), file("etc/conf", "conf"), file("etc/gone", "g"),
		dir("usr/", 0o755), dir("usr/lib/", 0o755), dir("usr/lib/old/", 0o755), file("usr/lib/old/x", "x"),
		dir("usr/lib/replaced/", 0o755), file("usr/lib/replaced/a", "a"), file("usr/lib/replaced/b", "b"),
		dir("var/", 0o755), file("var/f2d", "file"), dir("var/d2f/", 0o755), file("var/d2f/in", "in"),
		symlink("var/link", "/etc/conf"),
	}
	work, copyRoot := t.TempDir(), t.TempDir()
	mustDo(t, Extract(ctx, work, "/", makeTar(t, base...)))
	mustDo(t, Extract(ctx, copyRoot, "/", makeTar(t, base...)))
	ix, err := Scan(ctx, work)
	mustDo(t, err)

	// What a RUN might do.
	p := func(rel string) string { return filepath.Join(work, rel) }
	mustDo(t, os.WriteFile(p("etc/conf"), []byte("new conf"), 0o600))
	mustDo(t, os.Remove(p("etc/gone")))
	mustDo(t, os.RemoveAll(p("usr/lib/old")))
	mustDo(t, os.RemoveAll(p("usr/lib/replaced")))
	writeFiles(t, work, map[string]string{"/usr/lib/replaced/b": "b2", "/opt/app/bin": "app"})
	mustDo(t, os.Link(p("opt/app/bin"), p("opt/app/bin-hardlink")))
	mustDo(t, os.Symlink("bin", p("opt/app/current")))
	mustDo(t, os.Remove(p("var/f2d")))
	mustDo(t, os.Mkdir(p("var/f2d"), 0o750))
	mustDo(t, os.RemoveAll(p("var/d2f")))
	mustDo(t, os.WriteFile(p("var/d2f"), []byte("now a file"), 0o644))
	mustDo(t, os.Remove(p("var/link")))
	mustDo(t, os.Symlink("../etc/conf", p("var/link")))
	mustDo(t, os.Chmod(p("usr"), 0o700))

	ch, _, err := ix.Diff(ctx, work)
	mustDo(t, err)
	l, err := WriteLayer(ctx, work, t.TempDir(), ch, WithCompression(c))
	mustDo(t, err)
	rc, err := l.Uncompressed()
	mustDo(t, err)
	mustDo(t, Extract(ctx, copyRoot, "/", rc))
	mustDo(t, rc.Close())

	opts := listOpts{times: true, nlink: true}
	if diff := cmp.Diff(listTree(t, work, opts), listTree(t, copyRoot, opts)); diff != "" {
		t.Errorf("extracted layer differs from the changed tree (-want +got):\n%s", diff)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"/etc/conf": "c", "/var/run/kiln.sock": "s", "/var/lib/x": "x", "/kiln/state": "s", "/top": "t",
	})
	mustDo(t, os.Symlink("/", filepath.Join(root, "rootlink")))
	mustDo(t, Reset(context.Background(), root, NewIgnore("/var/run", "/kiln")))
	want := []string{"/kiln", "/kiln/state", "/var", "/var/run", "/var/run/kiln.sock"}
	var got []string
	for _, line := range listTree(t, root, listOpts{}) {
		got = append(got, strings.Fields(line)[0])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after Reset (-want +got):\n%s", diff)
	}
	mustDo(t, Reset(context.Background(), root, nil))
	if got := listTree(t, root, listOpts{}); len(got) != 0 {
		t.Errorf("Reset without ignores left %q", got)
	}
}
