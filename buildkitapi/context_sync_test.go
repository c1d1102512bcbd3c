package buildkitapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
	"google.golang.org/grpc/metadata"

	"github.com/kiln-build/kiln/builder/copier"
	"github.com/kiln-build/kiln/contexts"
)

// pipeStream is one end of an in-memory file-sync stream.
type pipeStream struct {
	ctx  context.Context
	in   <-chan *fstypes.Packet
	out  chan<- *fstypes.Packet
	sent func(*fstypes.Packet) // sees each packet this end sends
}

func (s *pipeStream) Context() context.Context { return s.ctx }

func (s *pipeStream) SendMsg(m any) error {
	p := m.(*fstypes.Packet).CloneVT()
	if s.sent != nil {
		s.sent(p)
	}
	select {
	case s.out <- p:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *pipeStream) RecvMsg(m any) error {
	select {
	case q, ok := <-s.in:
		if !ok {
			return io.EOF
		}
		p := m.(*fstypes.Packet)
		p.Type, p.ID, p.Stat, p.Data = q.Type, q.ID, q.Stat, q.Data
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// acceptAll is a transfer's options that let every entry in.
func acceptAll() syncOptions {
	return syncOptions{filter: func(string, *fstypes.Stat) bool { return true }, refused: func() error { return errors.New("refused") }}
}

// syncFrom runs fsutil's sender on src against the indexed receiver into dst, and
// returns how many files the receiver asked for.
func syncFrom(t *testing.T, src, dst string, idx *contextIndex) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	toRecv, toSend := make(chan *fstypes.Packet, 1<<16), make(chan *fstypes.Packet, 1<<16)
	var reqs atomic.Int64
	recvEnd := &pipeStream{ctx: ctx, in: toRecv, out: toSend, sent: func(p *fstypes.Packet) {
		if p.Type == fstypes.PACKET_REQ {
			reqs.Add(1)
		}
	}}
	sendEnd := &pipeStream{ctx: ctx, in: toSend, out: toRecv}
	srcFS, err := fsutil.NewFS(src)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(toRecv)
		fsutil.Send(ctx, sendEnd, srcFS, nil)
	}()
	err = syncInto(ctx, cancel, func(context.Context) (syncStream, error) { return recvEnd, nil }, dst, idx, acceptAll())
	cancel()
	wg.Wait()
	return int(reqs.Load()), err
}

// treeOf describes a tree as the receiver must reproduce it: each entry's type,
// mode, owner, time (also a directory's), link target and content, and which files
// are one (hard links).
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	walkTree(t, root, func(rel string, fi fs.FileInfo) {
		p := filepath.Join(root, rel)
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d %d", fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			if first, ok := inodes[st.Ino]; ok {
				desc += " = " + first
				break
			}
			inodes[st.Ino] = rel
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" %d %x", len(b), sum[:6])
		}
		out[rel] = desc
	})
	return out
}

// walkTree calls fn with the path below root and the lstat of every entry of the
// tree at root, root itself left out.
func walkTree(t *testing.T, root string, fn func(rel string, fi fs.FileInfo)) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fn(rel, fi)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sameSynced(t *testing.T, src, dst string) {
	t.Helper()
	want, got := treeOf(t, src), treeOf(t, dst)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: not in the client's tree", p)
		}
	}
}

// indexDescribes fails unless idx names exactly what dir holds, with its metadata,
// and knows each regular file's digest.
func indexDescribes(t *testing.T, idx *contextIndex, dir string) {
	t.Helper()
	seen := map[string]bool{}
	walkTree(t, dir, func(rel string, fi fs.FileInfo) {
		seen[rel] = true
		e := idx.entries[rel]
		if e == nil {
			t.Errorf("%s: on disk, not in the index", rel)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fs.FileMode(e.mode)
		if mode&fs.ModeSymlink != 0 {
			mode |= 0o777 // a symlink's permissions are not its own
		}
		unknownTime := fi.IsDir() && e.mtime == -1 // a directory after a failed transfer
		if mode != fi.Mode() || e.uid != st.Uid || e.gid != st.Gid || (e.mtime != fi.ModTime().UnixNano() && !unknownTime) {
			t.Errorf("%s: index %v %d:%d %d, disk %v %d:%d %d", rel, fs.FileMode(e.mode), e.uid, e.gid, e.mtime,
				fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(filepath.Join(dir, rel))
			sum := sha256.Sum256(b)
			if got, _ := idx.FileDigest(rel, fi); got != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Errorf("%s: digest %q, want its content's", rel, got)
			}
		}
	})
	for p := range idx.entries {
		if !seen[p] {
			t.Errorf("%s: in the index, not on disk", p)
		}
	}
}

// listingMatches fails unless idx lists every directory of dir as the disk does,
// and copier.Select sees the same tree through the listing as on the disk.
func listingMatches(t *testing.T, idx *contextIndex, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got, ok := idx.List(filepath.ToSlash(rel))
		if !ok {
			t.Errorf("%s: the index does not list it", rel)
			return nil
		}
		want, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			t.Errorf("%s: the index lists %d entries, the disk %d", rel, len(got), len(want))
			return nil
		}
		for i, w := range want {
			wi, err := w.Info()
			if err != nil {
				return err
			}
			g := got[i]
			if g.Name() != wi.Name() || g.Mode() != wi.Mode() || (!wi.IsDir() && (g.Size() != wi.Size() || !g.ModTime().Equal(wi.ModTime()))) {
				t.Errorf("%s: the index lists %s %v %d %v, the disk %s %v %d %v", rel, g.Name(), g.Mode(), g.Size(), g.ModTime(),
					wi.Name(), wi.Mode(), wi.Size(), wi.ModTime())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	selected := func(list func(string) ([]fs.FileInfo, bool)) []string {
		var out []string
		err := copier.Select(context.Background(), copier.Source{Root: dir, List: list, Context: true},
			copier.Request{Sources: []string{"."}, Dest: "/"}, func(e copier.Selected) error {
				size := e.Info.Size()
				if e.Info.IsDir() {
					size = 0 // a directory's size is the file system's, not the client's
				}
				out = append(out, fmt.Sprintf("%s %s %v %d %d", e.Rel, e.Host, e.Info.Mode(), size, e.Info.ModTime().UnixNano()))
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if disk, listed := selected(nil), selected(idx.List); strings.Join(disk, "\n") != strings.Join(listed, "\n") {
		t.Errorf("Select through the listing:\n%s\nfrom the disk:\n%s", strings.Join(listed, "\n"), strings.Join(disk, "\n"))
	}
}

// contextDigestsMatch fails unless the cached context's index knows each regular
// file of src by the sha256 of its content.
func contextDigestsMatch(t *testing.T, idx *contextIndex, src string, files []string) {
	t.Helper()
	for _, rel := range files {
		data, err := os.ReadFile(src + "/" + rel)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Lstat(src + "/" + rel)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want := "sha256:" + hex.EncodeToString(sum[:])
		if got, ok := idx.FileDigest(rel, info); got != want {
			t.Errorf("%s: digest %q (%v), want %s", rel, got, ok, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncReceiver: fsutil's sender against the indexed receiver. The first transfer
// reproduces a tree of every kind of entry (times, modes with setuid and sticky,
// owners, symlinks, hard links, a FIFO, empty and multi-chunk files); an unchanged
// tree transfers no file and writes nothing; after changes of every kind (content,
// mode, a file becoming a directory and back, a tree removed, a symlink retargeted,
// a hard link's file rewritten) only the changed files are asked for, and the tree
// and the index match the client's again.
func TestSyncReceiver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files of other owners")
	}
	src, dst := t.TempDir(), t.TempDir()
	at := func(rel string) string { return filepath.Join(src, rel) }
	old := time.Unix(1_600_000_000, 123456789)
	write := func(rel string, data []byte, mode fs.FileMode) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(at(rel)), 0o755))
		must(t, os.WriteFile(at(rel), data, mode))
		must(t, os.Chmod(at(rel), mode))
		must(t, os.Chtimes(at(rel), old, old))
	}
	write("a.txt", []byte("hello\n"), 0o644)
	write("empty", nil, 0o600)
	write("big/blob", bytes.Repeat([]byte("0123456789abcdef"), 20000), 0o755)
	write("bin/tool", []byte("#!/bin/sh\n"), 0o4755|fs.ModeSetuid)
	write("deep/x/y/z", []byte("z"), 0o644)
	write("gone/one", []byte("1"), 0o644)
	write("gone/sub/two", []byte("2"), 0o644)
	write("becomes-dir", []byte("file"), 0o644)
	write("becomes-file/inner", []byte("inner"), 0o644)
	write("nest/becomes-empty/inner", []byte("inner"), 0o644)
	write("nest/becomes-link/inner", []byte("inner"), 0o644)
	write("nest/zz", []byte("after them"), 0o644)
	write("owned", []byte("someone else's"), 0o640)
	must(t, os.Lchown(at("owned"), 1234, 5678))
	must(t, os.Link(at("a.txt"), at("deep/hard")))
	must(t, os.Symlink("a.txt", at("link")))
	must(t, os.Symlink("/etc/passwd", at("abs-link")))
	must(t, syscall.Mkfifo(at("fifo"), 0o644))
	must(t, os.Chmod(at("fifo"), 0o666)) // beyond the umask: set after mknod
	must(t, os.Mkdir(at("sticky"), 0o1777|fs.ModeSticky))
	must(t, os.Chmod(at("sticky"), 0o777|fs.ModeSticky))
	for _, d := range []string{"sticky", "deep/x/y", "deep/x", "deep", "big", "bin", "gone/sub", "gone", "becomes-file"} {
		must(t, os.Chtimes(at(d), old, old))
	}

	var budget atomic.Int64
	budget.Store(1000)
	idx := newContextIndex(&budget)
	reqs, err := syncFrom(t, src, dst, idx)
	must(t, err)
	sameSynced(t, src, dst)
	indexDescribes(t, idx, dst)
	listingMatches(t, idx, dst)
	if want := 12; reqs != want { // the non-empty files with content of their own
		t.Errorf("the first transfer asked for %d files, want %d", reqs, want)
	}
	if used := 1000 - budget.Load(); used != int64(len(idx.entries)) {
		t.Errorf("the index holds %d entries and took %d of the budget", len(idx.entries), used)
	}

	before := treeOf(t, dst)
	reqs, err = syncFrom(t, src, dst, idx)
	must(t, err)
	if reqs != 0 {
		t.Errorf("an unchanged tree: %d files asked for, want none", reqs)
	}
	after := treeOf(t, dst)
	for p, w := range before {
		if after[p] != w {
			t.Errorf("an unchanged tree: %s became %q from %q", p, after[p], w)
		}
	}

	now := time.Now()
	must(t, os.WriteFile(at("a.txt"), []byte("changed\n"), 0o644)) // deep/hard shares it
	must(t, os.Chmod(at("empty"), 0o644))
	must(t, os.Remove(at("becomes-dir")))
	write("becomes-dir/new", []byte("new"), 0o644)
	must(t, os.RemoveAll(at("becomes-file")))
	// below the top: the replaced directory's parent is the receiver's cached one
	must(t, os.RemoveAll(at("nest/becomes-empty")))
	write("nest/becomes-empty", nil, 0o644)
	must(t, os.RemoveAll(at("nest/becomes-link")))
	must(t, os.Symlink("zz", at("nest/becomes-link")))
	write("becomes-file", []byte("now a file"), 0o644)
	must(t, os.RemoveAll(at("gone")))
	must(t, os.Remove(at("link")))
	must(t, os.Symlink("big/blob", at("link")))
	must(t, os.Chtimes(at("deep/x"), now, now))
	reqs, err = syncFrom(t, src, dst, idx)
	must(t, err)
	sameSynced(t, src, dst)
	indexDescribes(t, idx, dst)
	listingMatches(t, idx, dst)
	if want := 3; reqs != want { // a.txt, becomes-dir/new, becomes-file
		t.Errorf("after the changes: %d files asked for, want %d", reqs, want)
	}
	if used := 1000 - budget.Load(); used != int64(len(idx.entries)) {
		t.Errorf("the index holds %d entries and took %d of the budget", len(idx.entries), used)
	}
	idx.release()
	if budget.Load() != 1000 {
		t.Errorf("budget %d after release, want 1000", budget.Load())
	}
}

// TestSyncReceiverIndexFull: a transfer that would take more entries than the budget
// leaves fails with errIndexFull.
func TestSyncReceiverIndexFull(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for i := range 5 {
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprint(i)), []byte("x"), 0o644))
	}
	var budget atomic.Int64
	budget.Store(3)
	idx := newContextIndex(&budget)
	if _, err := syncFrom(t, src, dst, idx); !errors.Is(err, errIndexFull) {
		t.Fatalf("got %v, want errIndexFull", err)
	}
	indexDescribes(t, idx, dst)
}

// scriptStream plays a client that sends the packets of its script and then waits.
type scriptStream struct {
	ctx    context.Context
	script []*fstypes.Packet
}

func (s *scriptStream) Context() context.Context { return s.ctx }
func (s *scriptStream) SendMsg(any) error        { return nil }

func (s *scriptStream) RecvMsg(m any) error {
	if len(s.script) == 0 {
		return io.EOF
	}
	q := s.script[0]
	s.script = s.script[1:]
	p := m.(*fstypes.Packet)
	p.Type, p.ID, p.Stat, p.Data = q.Type, q.ID, q.Stat, q.Data
	return nil
}

// scratchContext makes a context directory in a directory of its own (where nothing
// else may appear) and an index that may hold budget entries.
func scratchContext(t *testing.T, budget int64) (top, dir string, idx *contextIndex) {
	t.Helper()
	top = t.TempDir()
	dir = filepath.Join(top, "ctx")
	must(t, os.Mkdir(dir, 0o700))
	var b atomic.Int64
	b.Store(budget)
	return top, dir, newContextIndex(&b)
}

// runScript runs a transfer into dir from a client that sends script and then ends
// its stream.
func runScript(dir string, idx *contextIndex, script []*fstypes.Packet) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := &scriptStream{ctx: ctx, script: script}
	return syncInto(ctx, cancel, func(context.Context) (syncStream, error) { return s, nil }, dir, idx, acceptAll())
}

// TestSyncReceiverRefuses: a client's stream that would write outside the directory,
// write through a symlink, repeat or misplace entries or send what was not asked for
// fails with an error naming the problem, writes nothing outside the directory, and
// leaves the index describing the directory.
func TestSyncReceiverRefuses(t *testing.T) {
	dir := func(p string) *fstypes.Packet {
		return &fstypes.Packet{Type: fstypes.PACKET_STAT, Stat: &fstypes.Stat{Path: p, Mode: uint32(fs.ModeDir | 0o755)}}
	}
	file := func(p string, size int64) *fstypes.Packet {
		return &fstypes.Packet{Type: fstypes.PACKET_STAT, Stat: &fstypes.Stat{Path: p, Mode: 0o644, Size: size}}
	}
	link := func(p, target string, mode fs.FileMode) *fstypes.Packet {
		return &fstypes.Packet{Type: fstypes.PACKET_STAT, Stat: &fstypes.Stat{Path: p, Mode: uint32(mode), Linkname: target}}
	}
	end := &fstypes.Packet{Type: fstypes.PACKET_STAT}
	data := func(id uint32, b string) *fstypes.Packet {
		return &fstypes.Packet{Type: fstypes.PACKET_DATA, ID: id, Data: []byte(b)}
	}
	for _, tc := range []struct {
		name   string
		script []*fstypes.Packet
		want   string
	}{
		{"parent reference", []*fstypes.Packet{file("../escape", 1)}, `invalid path "../escape"`},
		{"absolute", []*fstypes.Packet{file("/etc/escape", 1)}, `invalid path "/etc/escape"`},
		{"unclean", []*fstypes.Packet{dir("a"), file("a/../../escape", 1)}, `invalid path "a/../../escape"`},
		{"empty", []*fstypes.Packet{file("", 1)}, `invalid path ""`},
		{"child of a file", []*fstypes.Packet{file("f", 0), file("f/x", 0)}, `"f/x" before its directory`},
		{"through a symlink", []*fstypes.Packet{link("l", "/", fs.ModeSymlink), file("l/escape", 0)}, `"l/escape" before its directory`},
		{"twice", []*fstypes.Packet{dir("d"), dir("d")}, `sent "d" twice`},
		{"hard link outside", []*fstypes.Packet{link("h", "../outside", 0o644)}, `hard link to "../outside"`},
		{"hard link to a directory", []*fstypes.Packet{dir("d"), link("h", "d", 0o644)}, `hard link to "d"`},
		{"symlink without target", []*fstypes.Packet{link("l", "", fs.ModeSymlink)}, `without a target`},
		{"socket", []*fstypes.Packet{link("s", "", fs.ModeSocket)}, `unknown type`},
		{"data not asked for", []*fstypes.Packet{file("f", 3), end, data(7, "abc")}, "data for file 7"},
		{"more than listed", []*fstypes.Packet{file("f", 3), end, data(0, "abcdef")}, "more than the 3 bytes"},
		{"after the end", []*fstypes.Packet{file("f", 3), end, file("g", 0)}, "after the end of its listing"},
		{"client error", []*fstypes.Packet{{Type: fstypes.PACKET_ERR, Data: []byte("disk on fire")}}, "error from the client: disk on fire"},
		{"cut short", []*fstypes.Packet{file("f", 3), end, data(0, "a")}, "ended the transfer before it was complete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, d, idx := scratchContext(t, 100)
			err := runScript(d, idx, tc.script)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if left, _ := os.ReadDir(top); len(left) != 1 {
				t.Errorf("written outside the directory: %v", left)
			}
			indexDescribes(t, idx, d)
		})
	}
}

// TestContextIndexFallback: when the indexes' budget runs out, the transfer goes on
// with fsutil's receiver into the same directory: the build gets the whole context,
// the context stays cached without an index, and a rebuild still transfers only what
// changed.
func TestContextIndexFallback(t *testing.T) {
	ts := newTestServer(t)
	content := map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nCOPY . /ctx/\n"}
	for i := range 8 {
		content[fmt.Sprintf("f/%d", i)] = strings.Repeat(fmt.Sprint(i), 4096)
	}
	src := writeFiles(t, content)
	ts.contexts.indexed.Store(4)
	build := func() int64 {
		t.Helper()
		_, statuses, err := ts.solveShared(t, "client", src, nil)
		if err != nil {
			t.Fatal(err)
		}
		return transferred(statuses)
	}
	if sent := build(); sent < 8*4096 {
		t.Errorf("the first build transferred %d bytes, want at least the files' %d", sent, 8*4096)
	}
	u := ts.contexts.usage()
	if len(u) != 1 {
		t.Fatalf("%d cached contexts, want 1", len(u))
	}
	if ts.contexts.entries[u[0].key].index.usable() {
		t.Error("the context kept an index beyond the budget")
	}
	if got := ts.contexts.indexed.Load(); got != 4 {
		t.Errorf("the budget is %d after the fallback, want all 4 back", got)
	}
	sameTree(t, src, u[0].path)
	must(t, os.WriteFile(filepath.Join(src, "f", "3"), bytes.Repeat([]byte("x"), 4096), 0o644))
	later := time.Now().Add(time.Minute)
	must(t, os.Chtimes(filepath.Join(src, "f", "3"), later, later))
	if sent := build(); sent < 4096 || sent > 2*4096 {
		t.Errorf("the rebuild after one change transferred %d bytes, want the changed file's 4096 and metadata", sent)
	}
	sameTree(t, src, u[0].path)
}

// TestSyncReceiverAfterMove: after contexts.CopyTree moved a received tree (as a
// context outgrowing memory moves to disk) and the index was told (moved), the next
// transfer into the copy brings back what the copy left out (a FIFO, extended
// attributes) and the directories' times, and asks only for the files with
// extended attributes.
func TestSyncReceiverAfterMove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: CopyTree keeps owners")
	}
	src, dst, moved := t.TempDir(), t.TempDir(), t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "d", "e"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d", "e", "plain"), []byte("plain"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "d", "tagged"), []byte("tagged"), 0o644))
	if err := syscall.Setxattr(filepath.Join(src, "d", "tagged"), "user.kiln", []byte("yes"), 0); err != nil {
		t.Skipf("no user extended attributes here: %v", err)
	}
	must(t, syscall.Mkfifo(filepath.Join(src, "d", "fifo"), 0o600))
	old := time.Unix(1_500_000_000, 0)
	for _, p := range []string{"d/e/plain", "d/tagged", "d/fifo", "d/e", "d"} {
		must(t, os.Chtimes(filepath.Join(src, p), old, old))
	}
	var budget atomic.Int64
	budget.Store(100)
	idx := newContextIndex(&budget)
	if _, err := syncFrom(t, src, dst, idx); err != nil {
		t.Fatal(err)
	}
	must(t, contexts.CopyTree(dst, moved, true))
	idx.moved()
	reqs, err := syncFrom(t, src, moved, idx)
	must(t, err)
	sameSynced(t, src, moved)
	indexDescribes(t, idx, moved)
	if reqs != 1 {
		t.Errorf("after the move: %d files asked for, want 1 (the one with extended attributes)", reqs)
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(filepath.Join(moved, "d", "tagged"), "user.kiln", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("user.kiln after the move: %q, %v; want yes", buf[:n], err)
	}
}

// FuzzSyncReceiver: whatever packets a client sends, in two transfers into one
// directory (the second compares with what the first left), the receiver returns
// (an error or success) without panicking, writes nothing outside its directory, and
// leaves the index describing the directory. Each input byte picks a packet; names
// come from a small set that includes the hostile ones; a 0xff byte ends the first
// transfer's script.
func FuzzSyncReceiver(f *testing.F) {
	f.Add([]byte{0, 1, 17, 4, 5, 5, 5})
	f.Add([]byte{0, 9, 2, 3, 1, 4, 5})
	f.Add([]byte{6, 0, 7, 1, 4, 5, 5, 5, 5})
	f.Add([]byte{0, 8, 16, 4, 0xff, 0, 9, 4})  // a, a/b, a/b/c; then a, a/b as a file
	f.Add([]byte{0, 8, 16, 4, 0xff, 0, 10, 4}) // a/b becomes a symlink
	f.Add([]byte{0, 8, 25, 4, 5, 0xff, 0, 4})  // a/b/c a file; then only a
	names := []string{"a", "a/b", "a/b/c", "b", "..", "../x", "/abs", "a/../b", "", "a/.", "l", "l/x", "h"}
	script := func(ops []byte) []*fstypes.Packet {
		var out []*fstypes.Packet
		stat := func(name string, mode fs.FileMode, size int64, link string) {
			out = append(out, &fstypes.Packet{Type: fstypes.PACKET_STAT,
				Stat: &fstypes.Stat{Path: name, Mode: uint32(mode), Size: size, Linkname: link, ModTime: 1}})
		}
		for i, b := range ops {
			name := names[int(b>>3)%len(names)]
			switch b % 8 {
			case 0:
				stat(name, fs.ModeDir|0o755, 0, "")
			case 1:
				stat(name, 0o644, int64(b>>4), "")
			case 2:
				stat(name, fs.ModeSymlink|0o777, 0, "/")
			case 3:
				stat(name, 0o644, 0, names[i%len(names)])
			case 4:
				out = append(out, &fstypes.Packet{Type: fstypes.PACKET_STAT})
			case 5:
				out = append(out, &fstypes.Packet{Type: fstypes.PACKET_DATA, ID: uint32(b>>4) % 4, Data: []byte("xy")[:b>>7+1]})
			case 6:
				out = append(out, &fstypes.Packet{Type: fstypes.PACKET_DATA, ID: uint32(b>>3) % 4})
			case 7:
				stat(name, fs.ModeNamedPipe|0o600, 0, "")
			}
		}
		return out
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			return
		}
		top, d, idx := scratchContext(t, 8)
		first, second, _ := bytes.Cut(ops, []byte{0xff})
		for _, part := range [][]byte{first, second} {
			runScript(d, idx, script(part))
			if left, _ := os.ReadDir(top); len(left) != 1 {
				t.Fatalf("written outside the directory: %v", left)
			}
			if idx.usable() {
				indexDescribes(t, idx, d)
			}
		}
	})
}

// BenchmarkReceive: a 2,000-file context (16 KiB each, in 20 directories) received by
// kiln's receiver and by fsutil's, from fsutil's sender over an in-memory stream:
// cold (into an empty directory) and unchanged (into the directory the last transfer
// filled). The client side is the same for both; its cost is in every figure. The
// directories are in /dev/shm when there is one, as kiln serve's contexts are in
// memory.
func BenchmarkReceive(b *testing.B) {
	tempDir := func(b *testing.B) string {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if d, err := os.MkdirTemp("/dev/shm", "kiln-bench-receive-"); err == nil {
				b.Cleanup(func() { os.RemoveAll(d) })
				return d
			}
		}
		return b.TempDir()
	}
	src := b.TempDir()
	data := bytes.Repeat([]byte("kiln"), 4096)
	for i := range 2000 {
		p := filepath.Join(src, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	receivers := map[string]func(ctx context.Context, cancel func(), s syncStream, dst string, idx *contextIndex) error{
		"kiln": func(ctx context.Context, cancel func(), s syncStream, dst string, idx *contextIndex) error {
			return syncInto(ctx, cancel, func(context.Context) (syncStream, error) { return s, nil }, dst, idx, acceptAll())
		},
		"fsutil": func(ctx context.Context, _ func(), s syncStream, dst string, _ *contextIndex) error {
			return fsutil.Receive(ctx, s, dst, fsutil.ReceiveOpt{})
		},
	}
	transfer := func(b *testing.B, recv func(context.Context, func(), syncStream, string, *contextIndex) error, dst string, idx *contextIndex) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		toRecv, toSend := make(chan *fstypes.Packet, 1<<14), make(chan *fstypes.Packet, 1<<14)
		srcFS, err := fsutil.NewFS(src)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(toRecv)
			fsutil.Send(ctx, &pipeStream{ctx: ctx, in: toSend, out: toRecv}, srcFS, nil)
		}()
		if err := recv(ctx, cancel, &pipeStream{ctx: ctx, in: toRecv, out: toSend}, dst, idx); err != nil {
			b.Fatal(err)
		}
		cancel()
		<-done
	}
	// cpu reports the process's CPU time per transfer (both sides: on 2 cores the
	// wall time hides the receiver's work behind the sender's).
	cpu := func(b *testing.B) func() {
		var before syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		return func() {
			var after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			used := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
			b.ReportMetric(float64(used.Milliseconds())/float64(b.N), "cpu-ms/op")
		}
	}
	for _, name := range []string{"kiln", "fsutil"} {
		recv := receivers[name]
		b.Run(name+"/cold", func(b *testing.B) {
			defer cpu(b)()
			for b.Loop() {
				b.StopTimer()
				dst := tempDir(b)
				var budget atomic.Int64
				budget.Store(maxIndexedEntries)
				idx := newContextIndex(&budget)
				b.StartTimer()
				transfer(b, recv, dst, idx)
			}
		})
		b.Run(name+"/unchanged", func(b *testing.B) {
			dst := tempDir(b)
			var budget atomic.Int64
			budget.Store(maxIndexedEntries)
			idx := newContextIndex(&budget)
			transfer(b, recv, dst, idx)
			defer cpu(b)()
			for b.Loop() {
				transfer(b, recv, dst, idx)
			}
		})
	}
}

// holdingStream is a client that sends its script, then keeps the stream open
// without sending anything until the stream is cancelled.
type holdingStream struct{ scriptStream }

func (s *holdingStream) RecvMsg(m any) error {
	if len(s.script) == 0 {
		<-s.ctx.Done()
		return s.ctx.Err()
	}
	return s.scriptStream.RecvMsg(m)
}

// runHolding runs a transfer from a client that sends script, then holds its stream
// open; it returns the directory, its index, how long the transfer took and its error.
func runHolding(t *testing.T, script []*fstypes.Packet, opt syncOptions) (string, *contextIndex, time.Duration, error) {
	t.Helper()
	d := t.TempDir()
	var budget atomic.Int64
	budget.Store(10)
	idx := newContextIndex(&budget)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sctx, scancel := context.WithCancel(ctx)
	s := &holdingStream{scriptStream{ctx: sctx, script: script}}
	start := time.Now()
	err := syncInto(ctx, scancel, func(context.Context) (syncStream, error) { return s, nil }, d, idx, opt)
	return d, idx, time.Since(start), err
}

// TestSyncReceiverClientHoldsStream: a complete transfer whose client never ends its
// stream after FIN succeeds after finWait instead of waiting for it.
func TestSyncReceiverClientHoldsStream(t *testing.T) {
	defer func(w time.Duration) { finWait = w }(finWait)
	finWait = 100 * time.Millisecond
	d, idx, took, err := runHolding(t, []*fstypes.Packet{
		{Type: fstypes.PACKET_STAT, Stat: &fstypes.Stat{Path: "empty", Mode: 0o644}},
		{Type: fstypes.PACKET_STAT},
	}, acceptAll())
	if err != nil {
		t.Fatal(err)
	}
	if took > 5*time.Second {
		t.Errorf("the transfer took %v", took)
	}
	indexDescribes(t, idx, d)
	if _, err := os.Stat(filepath.Join(d, "empty")); err != nil {
		t.Error(err)
	}
}

// TestSyncReceiverStall: a client that stops sending in the middle of a transfer (a
// file asked for, never sent) is cut off at the stall limit, with an error naming the
// limit's setting, and the index still describes the directory.
func TestSyncReceiverStall(t *testing.T) {
	opt := acceptAll()
	opt.stall = 200 * time.Millisecond
	d, idx, took, err := runHolding(t, []*fstypes.Packet{
		{Type: fstypes.PACKET_STAT, Stat: &fstypes.Stat{Path: "f", Mode: 0o644, Size: 3}},
		{Type: fstypes.PACKET_STAT},
		{Type: fstypes.PACKET_DATA, ID: 0, Data: []byte("a")},
	}, opt)
	if err == nil || !strings.Contains(err.Error(), "sent nothing of the build context for 200ms (--net-stall-timeout)") {
		t.Fatalf("got %v, want the stall", err)
	}
	if took > 5*time.Second {
		t.Errorf("cut off after %v", took)
	}
	indexDescribes(t, idx, d)
}

// TestHeaderValues: file-sync options travel as headers as they are, or all
// percent-encoded (and marked so) when one is not ASCII, as the client decodes them.
func TestHeaderValues(t *testing.T) {
	md := metadata.MD{}
	headerValues(md, "exclude-patterns", []string{"node_modules", "*.tmp"})
	headerValues(md, "dir-name", []string{"contexté"})
	if got := md["exclude-patterns"]; len(got) != 2 || got[0] != "node_modules" || md["exclude-patterns-encoded"] != nil {
		t.Errorf("ASCII values: %q, encoded %q", got, md["exclude-patterns-encoded"])
	}
	got := md["dir-name"]
	if len(got) != 1 || got[0] == "contexté" || md["dir-name-encoded"][0] != "1" {
		t.Fatalf("a non-ASCII value: %q, encoded %q", got, md["dir-name-encoded"])
	}
	if back, err := url.QueryUnescape(got[0]); err != nil || back != "contexté" {
		t.Errorf("decoded %q (%v), want contexté", back, err)
	}
}
