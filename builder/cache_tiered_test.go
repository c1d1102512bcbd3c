package builder

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestTieredCache runs the Cache suite on a local cache with a shared second level.
func TestTieredCache(t *testing.T) {
	testCacheSuite(t, func(t *testing.T) Cache {
		return withSharedCache(newTestLocalCache(t), newTestLocalCache(t), nil)
	})
}

func newTestLocalCache(t *testing.T) *LocalCache {
	t.Helper()
	c, err := NewLocalCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countingCache is a shared cache in memory that counts lookups and flushes.
type countingCache struct {
	mu      sync.Mutex
	steps   map[v1.Hash]*CachedStep
	gets    int
	flushes int
}

func (c *countingCache) Get(_ context.Context, key v1.Hash) (*CachedStep, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	if s, ok := c.steps[key]; ok {
		return s, nil
	}
	return nil, ErrCacheMiss
}

func (c *countingCache) Put(_ context.Context, key v1.Hash, s *CachedStep) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps[key] = s
	return nil
}

func (c *countingCache) Flush(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushes++
	return nil
}

// TestTieredCacheSharedHitIsKeptLocally: a step another server stored is found in the
// shared cache once, then in the local one, its layer a local file.
func TestTieredCacheSharedHitIsKeptLocally(t *testing.T) {
	ctx := context.Background()
	shared := &countingCache{steps: map[v1.Hash]*CachedStep{}}
	other := withSharedCache(newTestLocalCache(t), shared, nil) // the server that built it
	key := digestOf("RUN make")
	step := &CachedStep{Layer: mustRandomLayer(t), History: v1.History{Created: v1.Time{Time: time.Unix(1_700_000_000, 0)}, CreatedBy: "RUN make"}}
	if err := other.Put(ctx, key, step); err != nil {
		t.Fatal(err)
	}
	local := newTestLocalCache(t)
	obs := &recordingObserver{}
	c := withSharedCache(local, shared, obs)
	for i := range 2 {
		got, err := c.Get(ctx, key)
		if err != nil {
			t.Fatalf("lookup %d: %v", i+1, err)
		}
		if _, ok := got.Layer.(interface{ Path() string }); !ok {
			t.Errorf("lookup %d: layer %T, want a file of the local cache", i+1, got.Layer)
		}
	}
	if shared.gets != 1 {
		t.Errorf("the shared cache was asked %d times, want 1 (the second lookup is local)", shared.gets)
	}
	if _, err := local.Get(ctx, key); err != nil {
		t.Errorf("the local cache does not hold the shared hit: %v", err)
	}
	if _, err := c.Get(ctx, digestOf("other")); !errors.Is(err, ErrCacheMiss) {
		t.Errorf("unknown key: %v, want ErrCacheMiss", err)
	}
	// One shared hit (the first lookup), one shared miss (the unknown key).
	if got := obs.lookups[CacheKindShared]; got != [2]int{1, 1} {
		t.Errorf("shared lookups observed (hits, misses) = %v, want [1 1]", got)
	}
}

// TestWithSharedCache: either level alone is used as it is.
func TestWithSharedCache(t *testing.T) {
	l, s := newTestLocalCache(t), &countingCache{}
	for _, tc := range []struct {
		name          string
		local, shared Cache
		want          Cache
	}{
		{"none", nil, nil, nil},
		{"local only", l, nil, l},
		{"shared only", nil, s, s},
		{"both", l, s, tieredCache{local: l, shared: s, observe: nopObserver{}}},
	} {
		if got := withSharedCache(tc.local, tc.shared, nil); got != tc.want {
			t.Errorf("%s: got %#v, want %#v", tc.name, got, tc.want)
		}
	}
}
