package buildkitapi

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/kiln-build/kiln/contexts"
)

// TestContextMemory: a context that fits the memory directory is received there, one
// that outgrows it ends on disk without its files being sent twice; either way the
// cached context equals the client's byte for byte, its digests are its files'
// sha256, and a rebuild after one file changed transfers that file only.
func TestContextMemory(t *testing.T) {
	const files, fileSize = 48, 64 << 10
	for _, tc := range []struct {
		name     string
		memBytes int64
		wantMem  bool
	}{
		{"fits", 64 << 20, true},
		{"outgrows", 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			memDir := t.TempDir()
			ts := newTestServer(t, func(c *Config) { c.MemoryDir, c.MemoryContextBytes = memDir, tc.memBytes })
			content := map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nCOPY . /ctx/\n"}
			for i := range files {
				content[fmt.Sprintf("f/%02d", i)] = strings.Repeat(fmt.Sprintf("%02d", i), fileSize/2)
			}
			src := writeFiles(t, content)
			build := func() (int64, string) {
				t.Helper()
				resp, statuses, err := ts.solveShared(t, "client", src, nil)
				if err != nil {
					t.Fatal(err)
				}
				return transferred(statuses), resp.ExporterResponse["containerimage.config.digest"]
			}
			var names []string
			for name := range content {
				names = append(names, name)
			}
			cached := func() string {
				t.Helper()
				u := ts.contexts.usage()
				if len(u) != 1 {
					t.Fatalf("%d cached contexts, want 1", len(u))
				}
				if inMem := strings.HasPrefix(u[0].path, memDir+string(filepath.Separator)); inMem != tc.wantMem {
					t.Errorf("the cached context is at %s: in memory %v, want %v", u[0].path, inMem, tc.wantMem)
				}
				contextDigestsMatch(t, ts.contexts.entries[u[0].key].index, src, names)
				return u[0].path
			}

			sent, id1 := build()
			if total := int64(files * fileSize); sent < total || sent > total+total/5 {
				t.Errorf("the first build transferred %d bytes, want the context's %d and its metadata", sent, total)
			}
			sameTree(t, src, cached())

			// a file written again is a new one: the old one, held open, is unlinked
			hold := func(rel string) *os.File {
				t.Helper()
				f, err := os.Open(filepath.Join(cached(), rel))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return f
			}
			linked := func(f *os.File) bool {
				t.Helper()
				fi, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				return fi.Sys().(*syscall.Stat_t).Nlink > 0
			}
			kept, rewritten := hold("f/00"), hold("f/07")
			changed := filepath.Join(src, "f", "07")
			if err := os.WriteFile(changed, bytes.Repeat([]byte("x"), fileSize), 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Minute)
			if err := os.Chtimes(changed, later, later); err != nil {
				t.Fatal(err)
			}
			sent, id2 := build()
			if sent < fileSize || sent > 2*fileSize {
				t.Errorf("the rebuild after one change transferred %d bytes, want the changed file's %d and metadata", sent, fileSize)
			}
			if id1 == id2 {
				t.Error("the rebuild's image is the first build's: the changed file did not arrive")
			}
			sameTree(t, src, cached())
			if !linked(kept) {
				t.Error("the rebuild wrote an unchanged file again")
			}
			if linked(rewritten) {
				t.Error("the changed file was not written again")
			}

			ts.Close()
			if left, _ := filepath.Glob(filepath.Join(memDir, "*", "ctx-*")); len(left) != 0 {
				t.Errorf("contexts left in memory after Close: %v", left)
			}
		})
	}
}

// sameTree fails unless got holds what want holds: the same names, types, modes,
// modification times and bytes.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		if rel == "." { // the cache's own directory
			return nil
		}
		wi, err := d.Info()
		if err != nil {
			return err
		}
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if gi.Mode() != wi.Mode() || (!wi.IsDir() && !gi.ModTime().Equal(wi.ModTime())) {
			t.Errorf("%s: mode %v mtime %v, want %v %v", rel, gi.Mode(), gi.ModTime(), wi.Mode(), wi.ModTime())
		}
		if wi.Mode().IsRegular() {
			wb, _ := os.ReadFile(p)
			gb, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil || !bytes.Equal(wb, gb) {
				t.Errorf("%s: content differs (%v)", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(got, p); !seen[rel] {
			t.Errorf("%s: not in the client's context", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestContextCacheMemory: a new context makes room in memory by dropping the least
// recently used idle one; while a build holds the memory, the next context goes to
// disk.
func TestContextCacheMemory(t *testing.T) {
	state, mem := t.TempDir(), t.TempDir()
	c := newContextCache(state, 4, mem, 4<<20)
	acquire := func(key string) *contextLease {
		t.Helper()
		l, err := c.acquire(key)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	inMem := func(l *contextLease) bool { return strings.HasPrefix(l.dir(), mem+string(filepath.Separator)) }

	a := acquire("a")
	if !inMem(a) || a.memLimit() != 4<<20 {
		t.Fatalf("the first context: in memory %v with %d bytes, want 4 MiB in memory", inMem(a), a.memLimit())
	}
	aDir := a.dir()
	a.release(true, 3<<20)
	time.Sleep(time.Millisecond)
	b := acquire("b")
	if !inMem(b) || b.memLimit() != 4<<20 {
		t.Errorf("the second context: in memory %v with %d bytes, want 4 MiB in memory", inMem(b), b.memLimit())
	}
	if _, err := os.Stat(aDir); !os.IsNotExist(err) || c.size() != 1 {
		t.Errorf("the idle context in memory was not dropped for the new one (%v, %d entries)", err, c.size())
	}
	d := acquire("d")
	if inMem(d) || d.memLimit() != 0 {
		t.Errorf("a context while another build holds the memory: in memory %v with %d bytes, want on disk", inMem(d), d.memLimit())
	}
	d.release(true, 0)
	b.release(true, 1<<20)
	if e := acquire("b"); !inMem(e) || e.memLimit() != 4<<20 {
		t.Errorf("the key's context again: in memory %v with %d bytes, want 4 MiB in memory", inMem(e), e.memLimit())
	}
}

// TestContextCacheMemoryNoShare: a context in memory whose share is nothing (another
// build took it all) is still bounded: its first byte moves it to disk.
func TestContextCacheMemoryNoShare(t *testing.T) {
	c := newContextCache(t.TempDir(), 4, t.TempDir(), 4<<20)
	x, err := c.acquire("x")
	if err != nil {
		t.Fatal(err)
	}
	x.release(true, 0)
	a, err := c.acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.release(true, 0)
	if a.memLimit() != 4<<20 {
		t.Fatalf("a's share: %d bytes, want 4 MiB", a.memLimit())
	}
	x, err = c.acquire("x")
	if err != nil {
		t.Fatal(err)
	}
	defer x.release(true, 0)
	if n := x.memLimit(); n != 1 {
		t.Errorf("x's bound with no share left: %d, want 1 (0 would be no bound)", n)
	}
}

// TestSizeCounter: each regular file counts once, in whole pages, however often the
// receiver's filter asks about it (entrySeen).
func TestSizeCounter(t *testing.T) {
	var c sizeCounter
	file := func(p string, size int64) *fstypes.Stat { return &fstypes.Stat{Path: p, Mode: 0o644, Size: size} }
	for _, step := range []struct {
		path string
		st   *fstypes.Stat
		want int64
	}{
		{"a", file("a", 1), pageSize},
		{"a", file("a", 1), pageSize}, // the same file, seen again when written
		{"d", &fstypes.Stat{Path: "d", Mode: uint32(os.ModeDir | 0o755), Size: 4096}, pageSize},
		{"d/b", file("d/b", pageSize+1), 3 * pageSize},
		{"e", file("e", 0), 3 * pageSize},
		{"f", file("f", 1), 4 * pageSize},
		{"gone", &fstypes.Stat{}, 4 * pageSize}, // a deletion, handled before f is written
		{"f", file("f", 1), 4 * pageSize},       // f again: still once
	} {
		if got := c.add(step.path, step.st); got != step.want {
			t.Errorf("after %s: %d bytes, want %d", step.path, got, step.want)
		}
	}
}

// TestCopyContext: a context moved from memory keeps what file sync compares (type,
// mode, owner, size, modification time, link target) and its hard links.
func TestCopyContext(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting owners needs root")
	}
	src, dst := t.TempDir(), t.TempDir()
	mtime := time.Unix(1_700_000_000, 123456789)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(src, "d"), 0o750))
	must(os.WriteFile(filepath.Join(src, "d", "f"), []byte("data"), 0o600))
	must(os.Chmod(filepath.Join(src, "d", "f"), 0o4755))
	must(os.Lchown(filepath.Join(src, "d", "f"), 1234, 5678))
	must(os.Link(filepath.Join(src, "d", "f"), filepath.Join(src, "hard")))
	must(os.Symlink("d/f", filepath.Join(src, "link")))
	for _, p := range []string{"d/f", "d"} {
		must(os.Chtimes(filepath.Join(src, p), mtime, mtime))
	}
	must(contexts.CopyTree(src, dst, true))
	for _, rel := range []string{"d", "d/f", "hard", "link"} {
		w, err := os.Lstat(filepath.Join(src, rel))
		must(err)
		g, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		ws, gs := w.Sys().(*syscall.Stat_t), g.Sys().(*syscall.Stat_t)
		if g.Mode() != w.Mode() || g.Size() != w.Size() || gs.Uid != ws.Uid || gs.Gid != ws.Gid {
			t.Errorf("%s: %v %d bytes %d:%d, want %v %d bytes %d:%d", rel, g.Mode(), g.Size(), gs.Uid, gs.Gid, w.Mode(), w.Size(), ws.Uid, ws.Gid)
		}
		if !w.IsDir() && !g.ModTime().Equal(w.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, g.ModTime(), w.ModTime())
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "d/f" {
		t.Errorf("link: %q %v, want d/f", target, err)
	}
	f, _ := os.Stat(filepath.Join(dst, "d", "f"))
	h, _ := os.Stat(filepath.Join(dst, "hard"))
	if f == nil || h == nil || !os.SameFile(f, h) {
		t.Error("the hard link became a copy")
	}
}
