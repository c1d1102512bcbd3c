package buildkitapi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
)

// transferred is the context bytes a solve's status reports as sent.
func transferred(statuses []*bkclient.SolveStatus) int64 {
	var n int64
	for _, s := range statuses {
		for _, st := range s.Statuses {
			if st.ID == "transferring context" && st.Current > n {
				n = st.Current
			}
		}
	}
	return n
}

// TestIncrementalContext: a rebuild after one file changed transfers that file, not
// the context, and builds with the new content; another shared key transfers all.
func TestIncrementalContext(t *testing.T) {
	ts := newTestServer(t)
	files := map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nCOPY . /ctx/\n"}
	blob := string(bytes.Repeat([]byte("x"), 32<<10))
	for i := range 64 {
		files[fmt.Sprintf("f/%02d", i)] = blob
	}
	dir := writeFiles(t, files)
	build := func(key string) (int64, string) {
		t.Helper()
		resp, statuses, err := ts.solveShared(t, key, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return transferred(statuses), resp.ExporterResponse["containerimage.config.digest"]
	}
	first, id1 := build("client-a")
	if first < 64*32<<10 {
		t.Fatalf("first build transferred %d bytes, want the whole context (%d)", first, 64*32<<10)
	}
	changed := filepath.Join(dir, "f", "07")
	if err := os.WriteFile(changed, []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(changed, later, later); err != nil {
		t.Fatal(err)
	}
	second, id2 := build("client-a")
	if second > 8<<10 {
		t.Errorf("rebuild after one change transferred %d bytes, want only the changed file", second)
	}
	if id1 == id2 {
		t.Error("the rebuild's image is the first build's: the changed file did not arrive")
	}
	if other, _ := build("client-b"); other < 63*32<<10 {
		t.Errorf("another client's first build transferred %d bytes, want the whole context", other)
	}
	if ts.contexts.size() != 2 {
		t.Errorf("%d cached contexts, want 2", ts.contexts.size())
	}
}

// TestContextCacheBound: at most max idle contexts are kept, the oldest go first, an
// empty key is never kept, a busy entry is never handed out twice.
func TestContextCacheBound(t *testing.T) {
	c := newContextCache(t.TempDir(), 2, "", 0)
	acquire := func(key string) (string, func(bool)) {
		t.Helper()
		l, err := c.acquire(key)
		if err != nil {
			t.Fatal(err)
		}
		return l.dir(), func(keep bool) { l.release(keep, 0) }
	}
	var dirs []string
	for _, k := range []string{"a", "b", "c"} {
		d, release := acquire(k)
		dirs = append(dirs, d)
		release(true)
		time.Sleep(time.Millisecond)
	}
	if c.size() != 2 {
		t.Fatalf("%d entries, want 2", c.size())
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("the oldest entry's directory is still there: %v", err)
	}
	d1, r1 := acquire("b")
	d2, r2 := acquire("b")
	if d1 == d2 {
		t.Error("a busy entry was handed out twice")
	}
	r2(true)
	r1(true)
	if d, _ := acquire("b"); d != d1 {
		t.Errorf("the key's entry moved: %s, want %s", d, d1)
	}
	e, re := acquire("")
	re(true)
	if _, err := os.Stat(e); !os.IsNotExist(err) {
		t.Error("a context without a shared key was kept")
	}
}
