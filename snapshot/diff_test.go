package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// baseFiles is the tree every Diff case starts from.
var baseFiles = map[string]string{
	"/etc/conf":      "conf",
	"/etc/keep":      "keep",
	"/usr/bin/tool":  "tool",
	"/usr/lib/a/one": "1",
	"/usr/lib/a/two": "2",
	"/var/lib/x":     "x",
	"/ign/file":      "i",
}

func TestDiff(t *testing.T) {
	t.Parallel()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		mode   Mode
		ignore *Ignore
		mutate func(t *testing.T, root string)
		want   Changes
		// dirTimes keeps the directory mtimes the mutation left. Other cases put them
		// back, as the RUN executor does for the mount points it creates, so that each
		// case shows one rule.
		dirTimes bool
	}{{
		name:   "nothing",
		mutate: func(*testing.T, string) {},
	}, {
		name: "create and remove a file and a mount point",
		mutate: func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"/etc/hosts": "127.0.0.1"})
			mustDo(t, os.Remove(filepath.Join(root, "etc/hosts")))
			mustDo(t, os.Mkdir(filepath.Join(root, "proc"), 0o555))
			mustDo(t, os.Remove(filepath.Join(root, "proc")))
		},
	}, {
		name:     "a directory whose entries changed is changed, like overlayfs copy-up",
		dirTimes: true,
		mutate: func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"/etc/tmp": "t"})
			mustDo(t, os.Remove(filepath.Join(root, "etc/tmp")))
			mustDo(t, os.Chtimes(filepath.Join(root, "usr"), time.Unix(0, 0), time.Unix(0, 0)))
		},
		want: Changes{Changed: []string{"/etc", "/usr"}},
	}, {
		name: "new file",
		mutate: func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"/etc/new": "n", "/opt/x/y": "y"})
		},
		want: Changes{Changed: []string{"/etc/new", "/opt", "/opt/x", "/opt/x/y"}},
	}, {
		name: "modified content",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "etc/conf"), []byte("changed"), 0o644))
		},
		want: Changes{Changed: []string{"/etc/conf"}},
	}, {
		name: "chmod file and dir",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "usr/bin/tool"), 0o755))
			mustDo(t, os.Chmod(filepath.Join(root, "usr/lib"), 0o700))
		},
		want: Changes{Changed: []string{"/usr/bin/tool", "/usr/lib"}},
	}, {
		name: "chown",
		mutate: func(t *testing.T, root string) {
			skipUnlessRoot(t)
			mustDo(t, os.Lchown(filepath.Join(root, "etc/keep"), 1, 2))
		},
		want: Changes{Changed: []string{"/etc/keep"}},
	}, {
		name: "delete file",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "etc/conf")))
		},
		want: Changes{Deleted: []string{"/etc/conf"}},
	}, {
		name: "delete subtree reports only its top",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.RemoveAll(filepath.Join(root, "usr/lib")))
		},
		want: Changes{Deleted: []string{"/usr/lib"}},
	}, {
		name: "dir replaced is opaque with all its children",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.RemoveAll(filepath.Join(root, "usr/lib/a")))
			writeFiles(t, root, map[string]string{"/usr/lib/a/one": "1", "/usr/lib/a/new": "n"})
		},
		want: Changes{
			Changed: []string{"/usr/lib/a", "/usr/lib/a/new", "/usr/lib/a/one"},
			Opaque:  []string{"/usr/lib/a"},
		},
	}, {
		name: "file becomes dir",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "var/lib/x")))
			writeFiles(t, root, map[string]string{"/var/lib/x/inner": "i"})
		},
		want: Changes{Changed: []string{"/var/lib/x", "/var/lib/x/inner"}, Opaque: []string{"/var/lib/x"}},
	}, {
		name: "dir becomes file",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.RemoveAll(filepath.Join(root, "usr/lib/a")))
			writeFiles(t, root, map[string]string{"/usr/lib/a": "file now"})
		},
		want: Changes{Changed: []string{"/usr/lib/a"}},
	}, {
		name: "file becomes symlink",
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "etc/conf")))
			mustDo(t, os.Symlink("keep", filepath.Join(root, "etc/conf")))
		},
		want: Changes{Changed: []string{"/etc/conf"}},
	}, {
		name:   "ignored paths",
		ignore: NewIgnore("/ign", "/etc/keep"),
		mutate: func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"/ign/new": "n", "/etc/keep": "changed!"})
			mustDo(t, os.Remove(filepath.Join(root, "ign/file")))
		},
	}, {
		name: "redo sees chmod and same-size rewrite with restored mtime",
		mode: ModeRedo,
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "etc/keep"), 0o600))
			p := filepath.Join(root, "etc/conf")
			mustDo(t, os.Remove(p))
			writeFiles(t, root, map[string]string{"/etc/conf": "CONF"}) // new inode
			mustDo(t, os.Chtimes(p, old, old))
		},
		want: Changes{Changed: []string{"/etc/conf", "/etc/keep"}},
	}, {
		// Scans read no xattrs: setting one changes the ctime, which redo compares.
		name: "redo sees a capability set on an unchanged file",
		mode: ModeRedo,
		mutate: func(t *testing.T, root string) {
			skipUnlessRoot(t) // security.capability needs CAP_SETFCAP
			caps := []byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			mustDo(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), capabilityAttr, caps, 0))
		},
		want: Changes{Changed: []string{"/usr/bin/tool"}},
	}, {
		name: "time ignores chmod and same-size rewrite with restored mtime",
		mode: ModeTime,
		mutate: func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "etc/keep"), 0o600))
			p := filepath.Join(root, "etc/conf")
			mustDo(t, os.Remove(p))
			writeFiles(t, root, map[string]string{"/etc/conf": "CONF"})
			mustDo(t, os.Chtimes(p, old, old))
			mustDo(t, os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("longer tool"), 0o644))
		},
		want: Changes{Changed: []string{"/usr/bin/tool"}},
	}, {
		name: "full sees an in-place same-size rewrite with restored mtime",
		mode: ModeFull,
		mutate: func(t *testing.T, root string) {
			p := filepath.Join(root, "etc/conf")
			mustDo(t, os.WriteFile(p, []byte("CONF"), 0o644))
			mustDo(t, os.Chtimes(p, old, old))
		},
		want: Changes{Changed: []string{"/etc/conf"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, baseFiles)
			mustDo(t, os.Chtimes(filepath.Join(root, "etc/conf"), old, old))
			setDirTimes(t, root, old)
			ctx := context.Background()
			ix, err := Scan(ctx, root, WithMode(tt.mode), WithScanIgnore(tt.ignore))
			mustDo(t, err)
			tt.mutate(t, root)
			if !tt.dirTimes {
				setDirTimes(t, root, old)
			}
			got, next, err := ix.Diff(ctx, root)
			mustDo(t, err)
			if diff := cmp.Diff(&tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if got.Empty() != tt.want.Empty() {
				t.Errorf("Empty() = %v, want %v", got.Empty(), tt.want.Empty())
			}
			// The returned index is of the current tree: diffing again finds nothing.
			again, _, err := next.Diff(ctx, root)
			mustDo(t, err)
			if !again.Empty() {
				t.Errorf("second Diff = %+v, want empty", again)
			}
		})
	}
}

func TestIndexUpdate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, baseFiles)
	ctx := context.Background()
	ix, err := Scan(ctx, root)
	mustDo(t, err)
	n := ix.Len()

	// What a COPY would write: a new file in a new dir, a rewritten file, a new
	// directory tree passed only by its top, and a removed file.
	writeFiles(t, root, map[string]string{"/app/bin/run": "r", "/etc/conf": "rewritten", "/srv/a/b/c": "c"})
	mustDo(t, os.Remove(filepath.Join(root, "etc/keep")))
	mustDo(t, ix.Update(root, []string{"/app/bin/run", "etc/conf", "/srv", "/etc/keep"}))
	if want := n + 3 + 4 - 1; ix.Len() != want {
		t.Errorf("Len() = %d after Update, want %d", ix.Len(), want)
	}
	got, _, err := ix.Diff(ctx, root)
	mustDo(t, err)
	if !got.Empty() {
		t.Errorf("Diff after Update = %+v, want empty", got)
	}
}

func TestScanSkipsSockets(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	ix, err := Scan(context.Background(), root)
	mustDo(t, err)
	if ix.Len() != 0 {
		t.Fatalf("empty root: Len() = %d", ix.Len())
	}
	mkSocket(t, filepath.Join(root, "sock"))
	ch, _, err := ix.Diff(context.Background(), root)
	mustDo(t, err)
	if !ch.Empty() {
		t.Errorf("a new socket was reported: %+v", ch)
	}
}

// setDirTimes sets the mtime of every directory under root (root included) to at.
func setDirTimes(t *testing.T, root string, at time.Time) {
	t.Helper()
	mustDo(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.IsDir() {
			return err
		}
		return os.Chtimes(p, at, at)
	}))
}
