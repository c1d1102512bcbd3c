package registrycache_test

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/registrycache"
)

// TestGC: entries created longer than the TTL ago are deleted from the registry, the
// others and tags that are not cache keys are kept, and a lookup of a deleted entry
// is a miss.
func TestGC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := newRegistry(t, nil)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ages := map[string]time.Duration{"old": 30 * 24 * time.Hour, "older": 15 * 24 * time.Hour, "fresh": time.Hour, "edge": 7 * 24 * time.Hour}
	for name, age := range ages {
		c := registrycache.New(repo, registrycache.WithClock(func() time.Time { return now.Add(-age) }))
		if err := c.Put(ctx, key(name), runStep(t, randomLayer(t))); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("latest"), img); err != nil {
		t.Fatal(err)
	}

	rep, err := registrycache.GC(ctx, repo, 7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{key("old").Hex, key("older").Hex}
	sort.Strings(want)
	sort.Strings(rep.Deleted)
	if d := cmp.Diff(want, rep.Deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	if rep.Tags != 4 || rep.Kept != 2 {
		t.Errorf("report %+v, want 4 entries listed, 2 kept", rep)
	}
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tags)
	wantTags := []string{key("edge").Hex, key("fresh").Hex, "latest"}
	sort.Strings(wantTags)
	if d := cmp.Diff(wantTags, tags); d != "" {
		t.Errorf("tags left (-want +got):\n%s", d)
	}
	c := registrycache.New(repo, registrycache.WithClock(func() time.Time { return now }))
	if _, err := c.Get(ctx, key("old")); !errors.Is(err, builder.ErrCacheMiss) {
		t.Errorf("lookup of a deleted entry: %v, want a miss", err)
	}
	if _, err := c.Get(ctx, key("fresh")); err != nil {
		t.Errorf("lookup of a kept entry: %v", err)
	}
}

// TestGCErrors: a TTL of 0 is refused; a repository never written is nothing to do.
func TestGCErrors(t *testing.T) {
	t.Parallel()
	repo := newRegistry(t, nil)
	if _, err := registrycache.GC(context.Background(), repo, 0, time.Now()); err == nil {
		t.Error("GC with a TTL of 0 succeeded")
	}
	rep, err := registrycache.GC(context.Background(), repo, time.Hour, time.Now())
	if err != nil || rep.Tags != 0 {
		t.Errorf("GC of an empty repository: %+v, %v", rep, err)
	}
}
