package buildkitapi

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// hashedFile is what file sync's disk writer notifies for a file it wrote.
type hashedFile struct {
	*fsutil.StatInfo
	dgst digest.Digest
}

func (h hashedFile) Digest() digest.Digest { return h.dgst }

func written(size, mtime int64, content string) hashedFile {
	return hashedFile{
		StatInfo: &fsutil.StatInfo{Stat: &fstypes.Stat{Mode: 0o644, Size: size, ModTime: mtime}},
		dgst:     digest.FromString(content),
	}
}

// fileInfo is a regular file's lstat as the builder sees it.
type fileInfo struct {
	fs.FileInfo
	size  int64
	mtime int64
}

func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) ModTime() time.Time { return time.Unix(0, f.mtime) }
func (f fileInfo) Mode() fs.FileMode  { return 0o644 }

// TestFileDigests: a digest is known for the file as written (size and mtime), not
// after the file changed; a deleted directory takes its files' digests along, a
// directory's new metadata does not; the budget bounds what is remembered.
func TestFileDigests(t *testing.T) {
	var budget atomic.Int64
	budget.Store(3)
	d := newFileDigests(&budget)
	change := func(kind fsutil.ChangeKind, p string, fi os.FileInfo) {
		t.Helper()
		if err := d.HandleChange(kind, p, fi, nil); err != nil {
			t.Fatal(err)
		}
	}
	change(fsutil.ChangeKindAdd, "a", written(3, 100, "one"))
	change(fsutil.ChangeKindAdd, "dir/b", written(3, 200, "two"))
	change(fsutil.ChangeKindAdd, "dir", &fsutil.StatInfo{Stat: &fstypes.Stat{Mode: uint32(os.ModeDir | 0o755)}})
	change(fsutil.ChangeKindAdd, "other/c", written(5, 300, "three"))
	change(fsutil.ChangeKindAdd, "other/d", written(4, 400, "four")) // over the budget
	for _, tc := range []struct {
		rel  string
		info fileInfo
		want string
	}{
		{"a", fileInfo{size: 3, mtime: 100}, digest.FromString("one").String()},
		{"a", fileInfo{size: 3, mtime: 101}, ""},
		{"a", fileInfo{size: 4, mtime: 100}, ""},
		{"dir/b", fileInfo{size: 3, mtime: 200}, digest.FromString("two").String()},
		{"other/c", fileInfo{size: 5, mtime: 300}, digest.FromString("three").String()},
		{"other/d", fileInfo{size: 4, mtime: 400}, ""},
		{"missing", fileInfo{size: 3, mtime: 100}, ""},
	} {
		got, ok := d.FileDigest(tc.rel, tc.info)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s %d@%d: %q %v, want %q", tc.rel, tc.info.size, tc.info.mtime, got, ok, tc.want)
		}
	}
	change(fsutil.ChangeKindDelete, "dir", nil)
	if _, ok := d.FileDigest("dir/b", fileInfo{size: 3, mtime: 200}); ok {
		t.Error("a file of a deleted directory is still known")
	}
	if budget.Load() != 1 {
		t.Errorf("budget %d after a deletion, want 1", budget.Load())
	}
	d.release()
	if budget.Load() != 3 {
		t.Errorf("budget %d after release, want 3", budget.Load())
	}
}

// contextDigestsMatch fails unless the cached context's digests know each regular
// file of src by the sha256 of its content.
func contextDigestsMatch(t *testing.T, d *fileDigests, src string, files []string) {
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
		if got, ok := d.FileDigest(rel, info); got != want {
			t.Errorf("%s: digest %q (%v), want %s", rel, got, ok, want)
		}
	}
}
