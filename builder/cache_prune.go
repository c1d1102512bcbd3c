package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// CachePrune says which entries of the build cache a prune removes: the one rule
// behind `docker builder prune` on the Engine API and Control.Prune on BuildKit's.
// The zero value removes every entry not in use.
type CachePrune struct {
	// KeepDuration keeps the entries a build used within it (until=, BuildKit's
	// KeepDuration); zero means no age bound.
	KeepDuration time.Duration
	// ReservedSpace, MaxUsedSpace and MinFreeSpace bound what is removed by size,
	// as BuildKit's garbage collection reads them (docker builder prune
	// --reserved-space/--keep-storage, --max-used-space, --min-free-space): the least
	// recently used entries go first, until the cache holds at most MaxUsedSpace bytes
	// and the disk has MinFreeSpace bytes free, never below ReservedSpace bytes of
	// cache. All zero: no size bound, every chosen entry goes.
	ReservedSpace, MaxUsedSpace, MinFreeSpace int64
	// Match, when set, limits the prune to the entries it accepts (filters).
	Match func(CacheRecord) bool
}

// sizeBound reports whether any size bound is set.
func (p CachePrune) sizeBound() bool {
	return p.ReservedSpace > 0 || p.MaxUsedSpace > 0 || p.MinFreeSpace > 0
}

// KeepBytes is how many bytes of cache the size bounds leave on the disk holding dir:
// 0 when no size bound is set.
func (p CachePrune) KeepBytes(dir string) (int64, error) {
	if !p.sizeBound() {
		return 0, nil
	}
	keep := p.MaxUsedSpace
	if p.MinFreeSpace > 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, fmt.Errorf("reading the free space of %s: %w", dir, err)
		}
		free := int64(st.Bavail) * st.Bsize
		used := int64(st.Blocks-st.Bfree) * st.Bsize
		short := p.MinFreeSpace - free
		switch {
		case short > 0 && (keep == 0 || used-short < keep):
			keep = used - short
		case short <= 0 && keep == 0 && p.ReservedSpace == 0:
			return math.MaxInt64, nil // enough free space: nothing to remove
		}
	}
	return max(keep, p.ReservedSpace, 1), nil
}

// Select returns the records a prune removes, least recently used first: those not
// in use, accepted by Match and unused for KeepDuration (as of now); with keepBytes
// above zero, only as many of them as it takes to bring the records' total size down
// to keepBytes. Shared records count nothing towards the total (their data is
// counted in another record).
func (p CachePrune) Select(records []CacheRecord, now time.Time, keepBytes int64) []CacheRecord {
	var total int64
	var chosen []CacheRecord
	for _, r := range records {
		if !r.Shared {
			total += r.Size
		}
		if r.InUse || (p.Match != nil && !p.Match(r)) {
			continue
		}
		if p.KeepDuration > 0 && !r.LastUsedAt.Before(now.Add(-p.KeepDuration)) {
			continue
		}
		chosen = append(chosen, r)
	}
	sort.SliceStable(chosen, func(i, j int) bool { return chosen[i].LastUsedAt.Before(chosen[j].LastUsedAt) })
	if keepBytes <= 0 {
		return chosen
	}
	n := 0
	for n < len(chosen) && total > keepBytes {
		if !chosen[n].Shared {
			total -= chosen[n].Size
		}
		n++
	}
	return chosen[:n]
}

// PruneRecords removes the step-cache entries p selects, with the recorded inputs
// and blobs nothing names any more, and returns the removed entries as Usage lists
// them. Entries that cannot be read go too (they are misses already). It holds off
// the builds using the cache while it runs, as Prune does.
func (c *LocalCache) PruneRecords(ctx context.Context, p CachePrune) ([]CacheRecord, PruneReport, error) {
	var rep PruneReport
	keepBytes, err := p.KeepBytes(c.dir)
	if err != nil {
		return nil, rep, err
	}
	unlock, err := c.lock(ctx, true)
	if err != nil {
		return nil, rep, err
	}
	defer unlock()
	records, err := c.usageLocked()
	if err != nil {
		return nil, rep, err
	}
	removed := p.Select(records, c.now(), keepBytes)
	gone := make(map[string]bool, len(removed))
	for _, r := range removed {
		gone[r.ID+".json"] = true
	}
	listed := make(map[string]bool, len(records))
	for _, r := range records {
		listed[r.ID+".json"] = true
	}
	keep := map[string]bool{}
	keepDiffs := map[string]bool{} // the outputs' memo of compressed layers follows the entries
	err = c.sweep("steps", func(name string, _ fs.FileInfo) bool {
		if gone[name] || isTemp(name) || !listed[name] {
			// an entry Usage skipped is unreadable (or was written meanwhile,
			// which the exclusive lock rules out)
			rep.Entries++
			return true
		}
		var e localEntry
		if raw, err := os.ReadFile(filepath.Join(c.dir, "steps", name)); err == nil && json.Unmarshal(raw, &e) == nil && e.Layer != nil {
			keep[e.Layer.Digest.Algorithm+"-"+e.Layer.Digest.Hex] = true
			keepDiffs[e.Layer.DiffID.Algorithm+"-"+e.Layer.DiffID.Hex] = true
		}
		return false
	}, &rep)
	if err == nil {
		// The inputs index only names keys; one whose entry is gone is a miss. Full
		// prunes empty it, age-bound ones drop what is as old.
		cutoff := c.now().Add(-p.KeepDuration)
		err = c.sweep("inputs", func(name string, fi fs.FileInfo) bool {
			return isTemp(name) || (p.Match == nil && keepBytes == 0 && (p.KeepDuration <= 0 || fi.ModTime().Before(cutoff)))
		}, &rep)
	}
	if err == nil {
		err = c.sweep("blobs", func(name string, _ fs.FileInfo) bool {
			if !keep[name] {
				rep.Blobs++
				return true
			}
			return false
		}, &rep)
	}
	if err == nil {
		err = c.pruneCompressed(keepDiffs, &rep)
	}
	return removed, rep, err
}
