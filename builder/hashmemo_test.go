package builder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

// TestRebuildWithHashMemo rebuilds with one state directory, as kiln build
// --state-dir does: an unchanged rebuild takes the COPY from the cache, through the
// context-hash memo the first build left, and gives the same image; a file rewritten
// in place with its size and mtime put back runs the COPY again and changes the image.
func TestRebuildWithHashMemo(t *testing.T) {
	w := newWorld(t)
	state, ctxDir := t.TempDir(), t.TempDir()
	cache, err := builder.NewLocalCache(filepath.Join(state, "cache", "build"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	put := func(name, data string) {
		t.Helper()
		p := filepath.Join(ctxDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	put("data/a", "aaaa")
	put("data/sub/b", "bbbb")
	// The memo keeps no file changed within two seconds of its hashing (it could
	// change again within one timestamp tick): let the files age.
	time.Sleep(2100 * time.Millisecond)
	build := func() (digest string, hits int) {
		t.Helper()
		bctx, err := contexts.FromDir(ctxDir)
		if err != nil {
			t.Fatal(err)
		}
		ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: state, Cache: cache}
		req := &builder.Request{Dockerfile: []byte("FROM " + w.busybox + "\nCOPY data /data\n"), Context: bctx}
		res, err := builder.Build(context.Background(), req, builder.WithWorkspace(ws), builder.WithEvents(func(e builder.Event) {
			if h, ok := e.(builder.CacheHit); ok && strings.HasPrefix(h.Text, "COPY") {
				hits++
			}
		}))
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		d, err := res.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String(), hits
	}
	first, _ := build()
	if _, err := os.Stat(filepath.Join(state, "cache", "context-hashes")); err != nil {
		t.Fatalf("no context-hash memo after the first build: %v", err)
	}
	again, hits := build()
	if hits != 1 || again != first {
		t.Fatalf("unchanged rebuild: %d COPY cache hits, image %s; want 1 and %s", hits, again, first)
	}
	put("data/sub/b", "BBBB") // same size, mtime put back: only the ctime moved
	changed, hits := build()
	if hits != 0 || changed == first {
		t.Fatalf("rebuild after an in-place change: %d COPY cache hits, image %s; want 0 and a new image", hits, changed)
	}
	// Old enough now to be remembered: the memo must hold the new content's digest.
	time.Sleep(2100 * time.Millisecond)
	again, hits = build()
	if hits != 1 || again != changed {
		t.Fatalf("unchanged rebuild after the change: %d COPY cache hits, image %s; want 1 and %s", hits, again, changed)
	}
}
