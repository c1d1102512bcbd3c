package copier

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/contexts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// spec describes one node of a test tree:
//
//	"path"              directory, 0755
//	"path/"             directory, 0755
//	"path=content"      regular file, 0644
//	"path->target"      symlink
//	"path=>other"       hardlink to the already created other
//
// followed optionally by " mode=0750" and/or " owner=1:2" and/or " mtime=<unix>".
type spec string

// makeTree creates the nodes in root, in order. Ownership needs root; tests giving
// owners call needRoot first.
func makeTree(t *testing.T, root string, nodes ...spec) {
	t.Helper()
	for _, s := range nodes {
		fields := strings.Fields(string(s))
		def := fields[0]
		var mode os.FileMode
		uid, gid := -1, -1
		var mtime int64 = -1
		for _, f := range fields[1:] {
			switch {
			case strings.HasPrefix(f, "mode="):
				var m uint32
				if _, err := fmt.Sscanf(f, "mode=%o", &m); err != nil {
					t.Fatalf("spec %q: %v", s, err)
				}
				mode = fromUnixMode(m)
			case strings.HasPrefix(f, "owner="):
				if _, err := fmt.Sscanf(f, "owner=%d:%d", &uid, &gid); err != nil {
					t.Fatalf("spec %q: %v", s, err)
				}
			case strings.HasPrefix(f, "mtime="):
				if _, err := fmt.Sscanf(f, "mtime=%d", &mtime); err != nil {
					t.Fatalf("spec %q: %v", s, err)
				}
			default:
				t.Fatalf("spec %q: unknown field %q", s, f)
			}
		}
		var p string
		var err error
		switch {
		case strings.Contains(def, "=>"):
			name, other, _ := strings.Cut(def, "=>")
			p = filepath.Join(root, name)
			mkParent(t, p)
			err = os.Link(filepath.Join(root, other), p)
		case strings.Contains(def, "->"):
			name, target, _ := strings.Cut(def, "->")
			p = filepath.Join(root, name)
			mkParent(t, p)
			err = os.Symlink(target, p)
		case strings.Contains(def, "="):
			name, content, _ := strings.Cut(def, "=")
			p = filepath.Join(root, name)
			mkParent(t, p)
			if mode == 0 {
				mode = 0o644
			}
			err = os.WriteFile(p, []byte(content), 0o600)
		default:
			p = filepath.Join(root, strings.TrimSuffix(def, "/"))
			if mode == 0 {
				mode = 0o755
			}
			err = os.MkdirAll(p, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			if err := os.Lchown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		if mode != 0 {
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		if mtime >= 0 {
			tm := time.Unix(mtime, 0)
			if err := os.Chtimes(p, tm, tm); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mkParent(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
}

// listOpts says which attributes a listing shows.
type listOpts struct {
	owners bool // uid:gid
	mtimes bool // mtime in Unix seconds
}

// listing describes every path below root, one line each, sorted:
//
//	/path type mode [uid:gid] [mtime] detail
//
// where detail is a file's size and content (up to 40 bytes), a symlink's target, or
// "link=N" for a regular file with N > 1 links plus an inode group letter.
func listing(t *testing.T, root string, o listOpts) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		var b strings.Builder
		fmt.Fprintf(&b, "/%s %s %04o", filepath.ToSlash(rel), typeName(fi.Mode()), st.Mode&0o7777)
		if o.owners {
			fmt.Fprintf(&b, " %d:%d", st.Uid, st.Gid)
		}
		if o.mtimes {
			fmt.Fprintf(&b, " t=%d", fi.ModTime().Unix())
		}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(data) > 40 {
				data = append(data[:40:40], "..."...)
			}
			fmt.Fprintf(&b, " %d %q", fi.Size(), data)
			if st.Nlink > 1 {
				g, ok := inodes[st.Ino]
				if !ok {
					g = string(rune('A' + len(inodes)))
					inodes[st.Ino] = g
				}
				fmt.Fprintf(&b, " hardlink-%s", g)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		}
		lines = append(lines, b.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	}
	return "other"
}

// golden compares got with testdata/<name>.golden, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
}

// skipIfUnprivileged skips the test when err is a permission error of an unprivileged
// run: the classic builder's defaults (0:0 for created directories) need root.
func skipIfUnprivileged(t *testing.T, err error) {
	t.Helper()
	if err != nil && os.Geteuid() != 0 && errors.Is(err, fs.ErrPermission) {
		t.Skipf("needs root: %v", err)
	}
}

// self is the owner tests use when ownership is not what they test, so they also
// run unprivileged.
func self() *Owner {
	return &Owner{UID: os.Getuid(), GID: os.Getgid()}
}

// lutimes sets a symlink's own times.
func lutimes(p string, tm time.Time) error {
	ts := unix.NsecToTimespec(tm.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// sourceTree makes a COPY source at dir from nodes, with ignore as its .dockerignore
// when not empty, and returns it as the build context, or as a --from root (no
// .dockerignore applies) when from is set.
func sourceTree(t *testing.T, dir, ignore string, from bool, nodes ...spec) Source {
	t.Helper()
	makeTree(t, dir, nodes...)
	if ignore != "" {
		if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bc, err := contexts.FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := Source{Root: dir, Excluded: bc.Excluded, NoExceptions: !bc.HasExceptions(), Context: !from}
	if from {
		src.Excluded = nil
	}
	return src
}
