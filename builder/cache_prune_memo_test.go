package builder

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The outputs' memo of compressed layers follows the entries: a prune keeps the
// compressed blob of a layer an entry still holds and drops those of layers no entry
// holds, with crashed compressions' temporary files once they are old.
func TestLocalCachePruneCompressedMemo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	dir := t.TempDir()
	c, err := NewLocalCache(dir, withClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	keptKey, goneKey := digestOf("kept"), digestOf("gone")
	memo := filepath.Join(dir, compressedDir)
	if err := os.MkdirAll(memo, 0o700); err != nil {
		t.Fatal(err)
	}
	memoize := func(l v1.Layer, blob string) {
		t.Helper()
		diffID, _ := l.DiffID()
		d := digestOf("blob", blob)
		raw, _ := json.Marshal(map[string]any{"digest": d, "size": len(blob)})
		if err := os.WriteFile(filepath.Join(memo, "sha256-"+diffID.Hex+".gzip-0.json"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(memo, "sha256-"+d.Hex), []byte(blob), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for key, content := range map[v1.Hash]string{keptKey: "kept layer", goneKey: "gone layer"} {
		l := fileLayer(t, content)
		if err := c.Put(ctx, key, &CachedStep{Layer: l}); err != nil {
			t.Fatal(err)
		}
		memoize(l, "compressed "+content)
		used := now
		if key == goneKey {
			used = now.Add(-2 * time.Hour)
		}
		if err := os.Chtimes(filepath.Join(dir, "steps", key.Hex+".json"), used, used); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-2 * time.Hour)
	for _, n := range []string{".blob-1.tmp", ".blob-2.tmp"} {
		if err := os.WriteFile(filepath.Join(memo, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(memo, ".blob-1.tmp"), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	var left []string
	entries, _ := os.ReadDir(memo)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	kept := fileLayer(t, "kept layer")
	diffID, _ := kept.DiffID()
	want := []string{".blob-2.tmp", "sha256-" + diffID.Hex + ".gzip-0.json", "sha256-" + digestOf("blob", "compressed kept layer").Hex}
	if len(left) != len(want) {
		t.Fatalf("memo after prune: %q, want %q", left, want)
	}
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(memo, w)); err != nil {
			t.Errorf("memo after prune: %q, want %s kept", left, w)
		}
	}
}
