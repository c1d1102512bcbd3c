package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/snapshot"
)

// testCacheSuite is what every Cache implementation must do; a registry cache runs it
// too. newCache returns an empty cache.
func testCacheSuite(t *testing.T, newCache func(t *testing.T) Cache) {
	ctx := context.Background()
	hist := v1.History{Created: v1.Time{Time: time.Unix(1_700_000_000, 0).UTC()}, CreatedBy: "RUN make"}
	cfg := v1.Config{Env: []string{"PATH=/bin"}, WorkingDir: "/src"}

	t.Run("miss", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		if _, err := c.Get(ctx, digestOf("nothing")); !errors.Is(err, ErrCacheMiss) {
			t.Errorf("Get of an unknown key: %v, want ErrCacheMiss", err)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		l := fileLayer(t, "layer content")
		for _, step := range []*CachedStep{
			{History: v1.History{Created: hist.Created, CreatedBy: "ENV A=1", EmptyLayer: true}, Config: cfg},
			{Layer: l, History: hist, Config: cfg},
			{Layer: mustRandomLayer(t), History: hist, Config: cfg}, // not a file: copied
		} {
			key := digestOf(step.History.CreatedBy, fmt.Sprint(step.Layer))
			if err := c.Put(ctx, key, step); err != nil {
				t.Fatal(err)
			}
			got, err := c.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(step.History, got.History); d != "" {
				t.Errorf("history (-put +got):\n%s", d)
			}
			if d := cmp.Diff(keyedConfig(step.Config), keyedConfig(got.Config)); d != "" {
				t.Errorf("config (-put +got):\n%s", d)
			}
			if (step.Layer == nil) != (got.Layer == nil) {
				t.Fatalf("layer %v, got %v", step.Layer, got.Layer)
			}
			if step.Layer != nil {
				wantD, _ := step.Layer.Digest()
				gotD, _ := got.Layer.Digest()
				wantDiff, _ := step.Layer.DiffID()
				gotDiff, _ := got.Layer.DiffID()
				if wantD != gotD || wantDiff != gotDiff {
					t.Errorf("layer %s/%s, got %s/%s", wantD, wantDiff, gotD, gotDiff)
				}
				rc, err := got.Layer.Compressed()
				if err != nil {
					t.Fatalf("cached layer unreadable: %v", err)
				}
				rc.Close()
			}
		}
	})
	t.Run("concurrent puts", func(t *testing.T) {
		t.Parallel()
		c := newCache(t)
		l := fileLayer(t, "shared")
		key := digestOf("same key")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Put(ctx, key, &CachedStep{Layer: l, History: hist, Config: cfg}); err != nil {
					t.Errorf("put %d: %v", i, err)
				}
				if _, err := c.Get(ctx, key); err != nil && !errors.Is(err, ErrCacheMiss) {
					t.Errorf("get %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if _, err := c.Get(ctx, key); err != nil {
			t.Errorf("after concurrent puts: %v", err)
		}
	})
}

func TestLocalCache(t *testing.T) {
	testCacheSuite(t, func(t *testing.T) Cache {
		c, err := NewLocalCache(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

func TestLocalCacheExpiryAndPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	c, err := NewLocalCache(dir, WithTTL(time.Hour), withClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	oldKey, newKey := digestOf("old"), digestOf("new")
	put := func(key v1.Hash, content string) {
		t.Helper()
		if err := c.Put(ctx, key, &CachedStep{Layer: fileLayer(t, content), History: v1.History{CreatedBy: content}}); err != nil {
			t.Fatal(err)
		}
	}
	put(oldKey, "old layer")
	now = now.Add(2 * time.Hour)
	put(newKey, "new layer")
	if _, err := c.Get(ctx, oldKey); !errors.Is(err, ErrCacheMiss) {
		t.Errorf("entry older than the TTL: %v, want a miss", err)
	}
	// Entries were last used when stored (on the test's clock; the files' own times
	// are the machine's).
	for key, used := range map[v1.Hash]time.Time{oldKey: now.Add(-2 * time.Hour), newKey: now} {
		if err := os.Chtimes(filepath.Join(dir, "steps", key.Hex+".json"), used, used); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := c.Prune(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 1 || rep.Blobs != 1 || rep.Bytes == 0 {
		t.Errorf("prune older than 1h: %+v, want 1 entry and its blob", rep)
	}
	if _, err := c.Get(ctx, newKey); err != nil {
		t.Errorf("recent entry pruned: %v", err)
	}
	rep, err = c.Prune(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 1 || rep.Blobs != 1 {
		t.Errorf("prune all: %+v, want the last entry and blob", rep)
	}
	if _, err := c.Get(ctx, newKey); !errors.Is(err, ErrCacheMiss) {
		t.Errorf("after prune all: %v, want a miss", err)
	}
}

func TestLocalCacheInputs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := NewLocalCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slot := digestOf("slot")
	if _, err := c.Inputs(ctx, slot); !errors.Is(err, ErrCacheMiss) {
		t.Errorf("unknown slot: %v, want a miss", err)
	}
	want := []CacheInput{{Name: "file:a", Digest: "sha256:1"}, {Name: "arg:X", Digest: "sha256:2"}}
	if err := c.PutInputs(ctx, slot, want); err != nil {
		t.Fatal(err)
	}
	got, err := c.Inputs(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
	if _, err := c.Get(ctx, v1.Hash{Algorithm: "sha256", Hex: "../../etc/passwd"}); err == nil || errors.Is(err, ErrCacheMiss) {
		t.Errorf("a key that is no digest: %v, want an error", err)
	}
}

func TestDescribeInputChanges(t *testing.T) {
	t.Parallel()
	in := func(pairs ...string) []CacheInput {
		var out []CacheInput
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, CacheInput{Name: pairs[i], Digest: pairs[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		prev, now []CacheInput
		want      string
	}{
		{"same", in("file:a", "1"), in("file:a", "1"), ""},
		{"file changed", in("file:a", "1", "file:b", "2"), in("file:a", "1", "file:b", "3"), "file b changed"},
		{"arg changed", in("arg:V", "1"), in("arg:V", "2"), "build arg V changed"},
		{"added and gone", in("file:a", "1"), in("file:b", "1"), "file b is new, file a is gone"},
		{"stage", in("stage:build", "1"), in("stage:build", "2"), "stage build changed"},
		{"many", nil, in("file:a", "1", "file:b", "1", "file:c", "1", "file:d", "1", "file:e", "1"),
			"file a is new, file b is new, file c is new, 2 more inputs changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := describeInputChanges(tc.prev, tc.now); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// fileLayer writes a blob file holding content (not a real tar: the cache never reads
// it) and returns it as a layer, the way the builder's layers are files.
func fileLayer(t *testing.T, content string) v1.Layer {
	t.Helper()
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	d := digestOf(content) // a stand-in: the cache trusts a file layer's digest
	return snapshot.LayerFromFile(p, d, digestOf("diff", content), int64(len(content)), types.DockerLayer)
}

func mustRandomLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
