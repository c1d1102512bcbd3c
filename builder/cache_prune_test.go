package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCachePruneSelect(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rec := func(id string, size int64, age time.Duration, mod func(*CacheRecord)) CacheRecord {
		r := CacheRecord{ID: id, Type: "regular", Size: size, LastUsedAt: now.Add(-age)}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	records := []CacheRecord{
		rec("new", 100, time.Minute, nil),
		rec("old", 100, 48*time.Hour, nil),
		rec("mid", 100, 2*time.Hour, nil),
		rec("busy", 100, 72*time.Hour, func(r *CacheRecord) { r.InUse = true }),
		rec("ctx", 100, 3*time.Hour, func(r *CacheRecord) { r.Type = "source.local" }),
		rec("shared", 100, 96*time.Hour, func(r *CacheRecord) { r.Shared = true }),
	}
	tests := []struct {
		name      string
		p         CachePrune
		keepBytes int64
		want      []string
	}{
		{"everything not in use, least recently used first", CachePrune{}, 0, []string{"shared", "old", "ctx", "mid", "new"}},
		{"until=24h", CachePrune{KeepDuration: 24 * time.Hour}, 0, []string{"shared", "old"}},
		{"until=1h", CachePrune{KeepDuration: time.Hour}, 0, []string{"shared", "old", "ctx", "mid"}},
		{"type filter", CachePrune{Match: func(r CacheRecord) bool { return r.Type == "source.local" }}, 0, []string{"ctx"}},
		// total 500 (shared counts nothing, busy 100 counts): down to 300 takes two
		// records with data; the shared one first costs nothing.
		{"keep 300 bytes", CachePrune{}, 300, []string{"shared", "old", "ctx"}},
		{"keep more than there is", CachePrune{}, 1000, nil},
		{"keep 300 within 24h", CachePrune{KeepDuration: 24 * time.Hour}, 300, []string{"shared", "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range tt.p.Select(records, now, tt.keepBytes) {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Select = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCachePruneKeepBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		p    CachePrune
		want int64
	}{
		{"no bound", CachePrune{}, 0},
		{"reserved (keep-storage)", CachePrune{ReservedSpace: 5 << 20}, 5 << 20},
		{"max used", CachePrune{MaxUsedSpace: 7 << 20}, 7 << 20},
		{"max used below reserved", CachePrune{MaxUsedSpace: 1 << 20, ReservedSpace: 3 << 20}, 3 << 20},
		{"min free already free", CachePrune{MinFreeSpace: 1}, 1<<63 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.KeepBytes(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("KeepBytes = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestLocalCachePruneRecords checks that a filtered prune removes the chosen entries
// only, reports them as Usage lists them, and keeps the blobs the others name.
func TestLocalCachePruneRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := NewLocalCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]v1.Hash{"RUN a": digestOf("a"), "RUN b": digestOf("b"), "COPY c": digestOf("c")}
	for cmd, key := range keys {
		if err := c.Put(ctx, key, &CachedStep{Layer: fileLayer(t, cmd+" layer"), History: v1.History{CreatedBy: cmd}}); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "steps", keys["RUN a"].Hex+".json"), old, old); err != nil {
		t.Fatal(err)
	}
	removed, rep, err := c.PruneRecords(ctx, CachePrune{
		KeepDuration: 24 * time.Hour,
		Match:        func(r CacheRecord) bool { return strings.HasPrefix(r.Description, "RUN") },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].ID != keys["RUN a"].Hex || removed[0].Description != "RUN a" || removed[0].Size == 0 {
		t.Fatalf("removed %+v, want the old RUN a entry", removed)
	}
	if rep.Entries != 1 || rep.Blobs != 1 {
		t.Errorf("report %+v, want one entry and its blob", rep)
	}
	if _, err := c.Get(ctx, keys["RUN a"]); !errors.Is(err, ErrCacheMiss) {
		t.Errorf("pruned entry: %v, want a miss", err)
	}
	for _, cmd := range []string{"RUN b", "COPY c"} {
		if _, err := c.Get(ctx, keys[cmd]); err != nil {
			t.Errorf("%s was pruned: %v", cmd, err)
		}
	}
}
