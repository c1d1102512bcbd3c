package builder

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// budgetFixture is a state directory holding one entry of each kind of cache, each
// last used at its own age.
type budgetFixture struct {
	budget *CacheBudget
	// paths are each entry's file or directory, by type.
	paths map[string]string
	sizes map[string]int64
}

// budget ages: the cache mount is the least recently used, the newer step the most.
var budgetAges = map[string]time.Duration{
	MountCacheType: 5 * time.Hour,
	"base-image":   4 * time.Hour,
	RootfsType:     3 * time.Hour,
	"regular":      2 * time.Hour,
	"regular-new":  10 * time.Minute,
}

func newBudgetFixture(t *testing.T, now time.Time) *budgetFixture {
	t.Helper()
	ctx := context.Background()
	state := t.TempDir()
	f := &budgetFixture{paths: map[string]string{}}
	age := func(typ, path string) {
		at := now.Add(-budgetAges[typ])
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
		f.paths[typ] = path
	}
	steps, err := NewLocalCache(filepath.Join(state, "cache", "build"))
	if err != nil {
		t.Fatal(err)
	}
	for typ, content := range map[string]string{"regular": "old step layer", "regular-new": "new step layer"} {
		key := digestOf(typ)
		if err := steps.Put(ctx, key, &CachedStep{Layer: fileLayer(t, content), History: v1.History{CreatedBy: "RUN " + typ}}); err != nil {
			t.Fatal(err)
		}
		age(typ, filepath.Join(state, "cache", "build", "steps", key.Hex+".json"))
	}
	base := filepath.Join(state, "cache", "base")
	p, err := layout.Write(base, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: "example.com/base:1"})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(base, "blobs", "sha256"))
	for _, b := range blobs { // written by the pull, as long ago as its last use
		age("base-image", filepath.Join(base, "blobs", "sha256", b.Name()))
	}
	age("base-image", filepath.Join(base, "blobs", "sha256", d.Hex))
	tree := filepath.Join(base, "rootfs", digestOf("tree").Hex)
	writeFile(t, tree, "bin/sh", "a shell")
	age(RootfsType, tree)
	mounts := filepath.Join(state, "cache", "mounts")
	entry := filepath.Join(mounts, digestOf("mount").Hex)
	writeFile(t, entry, "data/pkg.tgz", string(make([]byte, 5000)))
	writeFile(t, entry, "id", "go-build")
	age(MountCacheType, entry)
	f.budget = &CacheBudget{Steps: steps, BaseCache: base, RootfsDir: filepath.Join(base, "rootfs"), MountCacheDir: mounts}
	recs, err := f.budget.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.sizes = map[string]int64{}
	for _, r := range recs {
		typ := r.Type
		if r.ID == digestOf("regular-new").Hex {
			typ = "regular-new"
		}
		f.sizes[typ] = r.Size
	}
	if len(recs) != 5 {
		t.Fatalf("the fixture lists %d entries, want 5: %+v", len(recs), recs)
	}
	return f
}

// TestCacheBudgetCollect: entries of every kind go least recently used first, by size
// or by age, and never one used since busySince.
func TestCacheBudgetCollect(t *testing.T) {
	now := time.Now()
	total := func(f *budgetFixture) int64 {
		var n int64
		for _, s := range f.sizes {
			n += s
		}
		return n
	}
	for _, tc := range []struct {
		name      string
		prune     func(f *budgetFixture) CachePrune
		busySince time.Duration // ago; 0: no build running
		want      []string
	}{
		{
			name:  "size: only the least recently used goes",
			prune: func(f *budgetFixture) CachePrune { return CachePrune{MaxUsedSpace: total(f) - f.sizes[MountCacheType]} },
			want:  []string{MountCacheType},
		},
		{
			name: "size: three kinds go",
			prune: func(f *budgetFixture) CachePrune {
				return CachePrune{MaxUsedSpace: f.sizes["regular"] + f.sizes["regular-new"]}
			},
			want: []string{MountCacheType, "base-image", RootfsType},
		},
		{
			name:  "age",
			prune: func(*budgetFixture) CachePrune { return CachePrune{KeepDuration: 150 * time.Minute} },
			want:  []string{MountCacheType, "base-image", RootfsType},
		},
		{
			name:      "a running build keeps what it may use",
			prune:     func(*budgetFixture) CachePrune { return CachePrune{MaxUsedSpace: 1} },
			busySince: 150 * time.Minute,
			want:      []string{MountCacheType, "base-image", RootfsType},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newBudgetFixture(t, now)
			var busy time.Time
			if tc.busySince > 0 {
				busy = now.Add(-tc.busySince)
			}
			// A pull in progress has written a blob its image does not name yet.
			pulling := filepath.Join(f.budget.BaseCache, "blobs", "sha256", digestOf("pulling").Hex)
			writeFile(t, filepath.Dir(pulling), filepath.Base(pulling), "a layer being pulled")
			removed, err := f.budget.Collect(context.Background(), tc.prune(f), now, busy)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range removed {
				got = append(got, r.Type)
			}
			sort.Strings(got)
			want := append([]string(nil), tc.want...)
			sort.Strings(want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("removed (-want +got):\n%s", d)
			}
			for typ, p := range f.paths {
				_, err := os.Stat(p)
				if gone := os.IsNotExist(err); gone != contains(tc.want, typ) {
					t.Errorf("%s %s: gone=%v, want %v", typ, p, gone, !gone)
				}
			}
			recs, err := f.budget.Usage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 5-len(tc.want) {
				t.Errorf("%d entries left, want %d: %+v", len(recs), 5-len(tc.want), recs)
			}
			if contains(tc.want, "base-image") {
				blobs, _ := os.ReadDir(filepath.Join(f.budget.BaseCache, "blobs", "sha256"))
				if len(blobs) != 1 || blobs[0].Name() != filepath.Base(pulling) {
					t.Errorf("blobs left %v, want only the one being pulled", blobs)
				}
			}
		})
	}
}

// TestCacheBudgetBegin: the bound applies when a build ends, sparing what a build
// still running started with.
func TestCacheBudgetBegin(t *testing.T) {
	f := newBudgetFixture(t, time.Now())
	f.budget.MaxBytes = 1
	endOther := f.budget.Begin()
	end := f.budget.Begin()
	removed, err := end(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 5 {
		// the other build started after every entry's last use: all may go
		t.Errorf("removed %d entries while another build runs, want 5", len(removed))
	}
	if _, err := endOther(context.Background()); err != nil {
		t.Fatal(err)
	}
	var nilBudget *CacheBudget
	if removed, err := nilBudget.Begin()(context.Background()); err != nil || removed != nil {
		t.Errorf("a nil budget removed %v, %v", removed, err)
	}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
