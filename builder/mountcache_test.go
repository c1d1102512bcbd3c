package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

func cacheMount(id string, sharing instructions.ShareMode) runMount {
	return runMount{Mount: &instructions.Mount{Type: instructions.MountTypeCache, CacheSharing: sharing}, id: id, target: "/c"}
}

// TestMountCacheSharing acquires one cache id twice, as two RUNs at once would: shared
// gives both the same directory, locked makes the second wait until the first is
// released, private gives the second a fresh, empty directory dropped on release.
func TestMountCacheSharing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cache directories are created root's")
	}
	tests := []struct {
		sharing  instructions.ShareMode
		same     bool // the second RUN gets the same directory
		waits    bool // the second RUN waits for the first
		seesSeed bool
	}{
		{sharing: instructions.MountSharingShared, same: true, seesSeed: true},
		{sharing: instructions.MountSharingLocked, same: true, waits: true, seesSeed: true},
		{sharing: instructions.MountSharingPrivate},
	}
	for _, tt := range tests {
		t.Run(string(tt.sharing), func(t *testing.T) {
			mc := &mountCache{dir: t.TempDir()}
			m := cacheMount("id1", tt.sharing)
			ctx := context.Background()
			dir1, release1, err := mc.acquire(ctx, m, nil, t.TempDir()+"/s1")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir1, "seed"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			dir2, release2, err := mc.acquire(short, m, nil, t.TempDir()+"/s2")
			if tt.waits {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("second acquire: %v, want it to wait (deadline exceeded)", err)
				}
				release1()
				dir2, release2, err = mc.acquire(ctx, m, nil, t.TempDir()+"/s2")
			} else {
				defer release1()
			}
			if err != nil {
				t.Fatal(err)
			}
			if (dir1 == dir2) != tt.same {
				t.Errorf("directories %s and %s: same %t, want %t", dir1, dir2, dir1 == dir2, tt.same)
			}
			if _, err := os.Stat(filepath.Join(dir2, "seed")); (err == nil) != tt.seesSeed {
				t.Errorf("second RUN sees the first's file: %t, want %t", err == nil, tt.seesSeed)
			}
			release2()
			if !tt.same {
				if _, err := os.Stat(dir2); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the private copy %s outlived its RUN (%v)", dir2, err)
				}
			}
		})
	}
}

// TestMountCacheUsagePrune lists the entries as exec.cachemount records, keeps one a
// RUN holds, and removes the least recently used first down to a size bound.
func TestMountCacheUsagePrune(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cache directories are created root's")
	}
	ctx := context.Background()
	dir := t.TempDir()
	mc := &mountCache{dir: dir}
	for i, id := range []string{"old", "new", "held"} {
		d, release, err := mc.acquire(ctx, cacheMount(id, ""), nil, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), make([]byte, 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		if id == "held" {
			defer release()
		} else {
			release()
		}
		past := time.Now().Add(time.Duration(i-10) * time.Hour)
		if err := os.Chtimes(mc.entry(id), past, past); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := MountCacheUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Description != "cached mount old" || recs[0].Type != MountCacheType || recs[0].Size < 64<<10 {
		t.Fatalf("records %+v, want old, new, held, of type %s, each at least 64KiB", recs, MountCacheType)
	}
	if recs[0].InUse || !recs[2].InUse {
		t.Errorf("in use: %t %t %t, want only held", recs[0].InUse, recs[1].InUse, recs[2].InUse)
	}
	// A bound that leaves room for two entries removes the oldest only.
	removed, err := PruneMountCache(dir, CachePrune{MaxUsedSpace: recs[1].Size + recs[2].Size})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Description != "cached mount old" {
		t.Errorf("removed %+v, want old", removed)
	}
	// Without a bound every entry not in use goes.
	if removed, err = PruneMountCache(dir, CachePrune{}); err != nil || len(removed) != 1 || removed[0].Description != "cached mount new" {
		t.Errorf("removed %+v (%v), want new", removed, err)
	}
	if recs, _ := MountCacheUsage(dir); len(recs) != 1 {
		t.Errorf("%d entries left, want held", len(recs))
	}
}

// TestInPlaceRefusesDirMounts checks that an in-place build (in a temporary root)
// refuses cache, bind and tmpfs mounts, naming the line, before anything runs: the
// command is one that does not exist anyway.
func TestInPlaceRefusesDirMounts(t *testing.T) {
	t.Parallel()
	for _, mount := range []string{"type=cache,target=/c", "type=bind,target=/c", "type=tmpfs,target=/c"} {
		t.Run(mount, func(t *testing.T) {
			t.Parallel()
			ws, _ := inPlaceWorkspace(t)
			bctx, err := contexts.FromDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			df := "FROM scratch\nRUN --mount=" + mount + ` ["/kiln-test-does-not-exist"]` + "\n"
			_, err = Build(context.Background(), &Request{Dockerfile: []byte(df), Context: bctx}, WithWorkspace(ws))
			if err == nil || !errors.Is(err, isolation.ErrMountNeedsChroot) || !strings.Contains(err.Error(), "Dockerfile:2") {
				t.Fatalf("Build error %v, want one naming Dockerfile:2 and wrapping ErrMountNeedsChroot", err)
			}
		})
	}
}
