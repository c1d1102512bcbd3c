package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/atomicfile"
)

// RootfsType is the CacheRecord type of an extracted base tree (chroot isolation).
const RootfsType = "extracted-base"

// baseBlobGrace keeps the base cache's unnamed blobs written lately: a pull writes its
// blobs before index.json names its image, maybe in another process (kiln warm, a
// server beside kiln cache gc) that no busySince covers.
const baseBlobGrace = 10 * time.Minute

// CacheBudget is a server's local caches taken together — the step cache, the base
// image cache, the extracted base trees and the RUN --mount=type=cache directories —
// with the rule that bounds them: kiln serve's --cache-max-size after each build and
// at start, and kiln cache gc. Entries go least recently used first, whatever their
// kind, never one a running build uses. Use it through a pointer: it counts the
// builds running in this process (Begin).
type CacheBudget struct {
	// Steps is the step cache; nil leaves it alone.
	Steps *LocalCache
	// BaseCache is the base cache's directory (an OCI layout); empty leaves it alone.
	BaseCache string
	// RootfsDir holds the extracted base trees; empty leaves them alone.
	RootfsDir string
	// MountCacheDir holds the cache mounts' directories; empty leaves them alone.
	MountCacheDir string
	// MaxBytes is what Begin's end applies after each build; 0 applies nothing.
	MaxBytes int64

	mu      sync.Mutex
	running map[*int]time.Time // builds of this process and when they started
	// treeSizes remembers the size of each extracted tree: a tree is renamed into
	// place whole and never changes, so a server walks each once, not after every build.
	treeSizes map[string]int64
}

// Usage lists every entry of the caches, least recently used first.
func (c *CacheBudget) Usage(ctx context.Context) ([]CacheRecord, error) {
	var all []CacheRecord
	if c.Steps != nil {
		recs, err := c.Steps.Usage(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	if c.BaseCache != "" {
		recs, err := BaseCacheUsage(c.BaseCache)
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	if c.RootfsDir != "" {
		recs, err := rootfsUsage(c.RootfsDir, c.treeSize)
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	if c.MountCacheDir != "" {
		recs, err := MountCacheUsage(c.MountCacheDir)
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].LastUsedAt.Before(all[j].LastUsedAt) })
	return all, nil
}

// Collect removes the entries p selects (CachePrune.Select: not used within
// KeepDuration, least recently used first until MaxUsedSpace fits) and returns them.
// Entries last used at or after busySince count as in use: a running build may still
// read them (pass the start of the oldest build running, or the zero time when none).
func (c *CacheBudget) Collect(ctx context.Context, p CachePrune, now, busySince time.Time) ([]CacheRecord, error) {
	recs, err := c.Usage(ctx)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		if !busySince.IsZero() && !recs[i].LastUsedAt.Before(busySince) {
			recs[i].InUse = true
		}
	}
	keep := p.MaxUsedSpace
	if p.MinFreeSpace > 0 || p.ReservedSpace > 0 {
		// The disk whose free space counts: the caches share the state directory's.
		dir := c.BaseCache
		if c.Steps != nil {
			dir = c.Steps.dir
		}
		if keep, err = p.KeepBytes(dir); err != nil {
			return nil, err
		}
	}
	chosen := p.Select(recs, now, keep)
	byType := map[string]map[string]bool{}
	for _, r := range chosen {
		if byType[r.Type] == nil {
			byType[r.Type] = map[string]bool{}
		}
		byType[r.Type][r.ID] = true
	}
	match := func(ids map[string]bool) func(CacheRecord) bool {
		return func(r CacheRecord) bool { return ids[r.ID] }
	}
	var removed []CacheRecord
	var errs []error
	if ids := byType["regular"]; len(ids) > 0 && c.Steps != nil {
		recs, _, err := c.Steps.PruneRecords(ctx, CachePrune{Match: match(ids)})
		removed, errs = append(removed, recs...), append(errs, err)
	}
	if ids := byType[MountCacheType]; len(ids) > 0 {
		mc := &mountCache{dir: c.MountCacheDir}
		recs, err := mc.usage()
		if err == nil {
			recs, err = mc.prune(CachePrune{Match: match(ids)}, recs, 0)
		}
		removed, errs = append(removed, recs...), append(errs, err)
	}
	if ids := byType[RootfsType]; len(ids) > 0 {
		recs, err := removeRootfs(c.RootfsDir, chosen, ids)
		removed, errs = append(removed, recs...), append(errs, err)
	}
	if ids := byType["base-image"]; len(ids) > 0 {
		fresh := now.Add(-baseBlobGrace)
		if !busySince.IsZero() && busySince.Before(fresh) {
			fresh = busySince
		}
		recs, err := removeBaseImages(ctx, c.BaseCache, chosen, ids, fresh)
		removed, errs = append(removed, recs...), append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// Begin notes a build starting; the function it returns notes its end and then, with
// MaxBytes set, removes the least recently used entries until the caches fit, leaving
// alone what the builds still running may use.
func (c *CacheBudget) Begin() (end func(ctx context.Context) ([]CacheRecord, error)) {
	if c == nil {
		return func(context.Context) ([]CacheRecord, error) { return nil, nil }
	}
	id := new(int)
	c.mu.Lock()
	if c.running == nil {
		c.running = map[*int]time.Time{}
	}
	c.running[id] = time.Now()
	c.mu.Unlock()
	return func(ctx context.Context) ([]CacheRecord, error) {
		c.mu.Lock()
		delete(c.running, id)
		var oldest time.Time
		for _, t := range c.running {
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
		c.mu.Unlock()
		if c.MaxBytes <= 0 {
			return nil, nil
		}
		return c.Collect(ctx, CachePrune{MaxUsedSpace: c.MaxBytes}, time.Now(), oldest)
	}
}

// treeSize is DirSize of an extracted tree, walked once per tree and process.
func (c *CacheBudget) treeSize(tree string) int64 {
	c.mu.Lock()
	n, ok := c.treeSizes[tree]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = DirSize(tree)
	c.mu.Lock()
	if c.treeSizes == nil {
		c.treeSizes = map[string]int64{}
	}
	c.treeSizes[tree] = n
	c.mu.Unlock()
	return n
}

// rootfsUsage lists the extracted base trees in dir, sized by size. A tree an overlay
// mount of this machine's mount namespace uses is in use.
func rootfsUsage(dir string, size func(tree string) int64) ([]CacheRecord, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var out []CacheRecord
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		tree := filepath.Join(dir, e.Name())
		fi, err := os.Stat(tree)
		if err != nil {
			continue
		}
		out = append(out, CacheRecord{
			ID: e.Name(), Type: RootfsType, Description: "extracted base " + e.Name()[:12],
			Size: size(tree), CreatedAt: fi.ModTime(), LastUsedAt: fi.ModTime(),
			InUse: bytes.Contains(mounts, []byte("lowerdir="+tree)),
		})
	}
	return out, nil
}

// removeRootfs removes the trees named by ids, each under its lock (no build is
// extracting it) and moved aside first, so that a build looking for it from then on
// extracts it again rather than mounting a half-removed tree.
func removeRootfs(dir string, recs []CacheRecord, ids map[string]bool) ([]CacheRecord, error) {
	var removed []CacheRecord
	for _, r := range recs {
		if !ids[r.ID] || r.Type != RootfsType {
			continue
		}
		tree := filepath.Join(dir, r.ID)
		lock := flock.New(tree + ".lock")
		if ok, err := lock.TryLock(); err != nil || !ok {
			continue // being extracted
		}
		gone := filepath.Join(dir, ".tmp-gc-"+r.ID)
		err := os.Rename(tree, gone)
		if err == nil {
			err = os.RemoveAll(gone)
		}
		_ = lock.Unlock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("removing extracted base %s: %w", tree, err)
		}
		removed = append(removed, r)
	}
	return removed, nil
}

// removeBaseImages drops the images named by ids (manifest digests) from the base
// cache's index.json, under the index lock, then the blobs no remaining image names.
// When a remaining image cannot be read, no blob is removed (it might be one of its);
// nor is a blob written at or after fresh (a pull records its image after its blobs).
func removeBaseImages(ctx context.Context, dir string, recs []CacheRecord, ids map[string]bool, fresh time.Time) ([]CacheRecord, error) {
	c := &baseCache{dir: dir}
	lock := flock.New(filepath.Join(dir, "index.json.lock"))
	if _, err := lock.TryLockContext(ctx, lockRetryDelay); err != nil {
		return nil, fmt.Errorf("locking base cache %s: %w", dir, err)
	}
	defer lock.Unlock()
	im, err := c.index()
	if err != nil {
		return nil, err
	}
	kept := im.Manifests[:0]
	for _, m := range im.Manifests {
		if !ids[m.Digest.Hex] {
			kept = append(kept, m)
		}
	}
	im.Manifests = kept
	data, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "index.json"), data, 0o644); err != nil {
		return nil, err
	}
	var removed []CacheRecord
	for _, r := range recs {
		if ids[r.ID] && r.Type == "base-image" {
			removed = append(removed, r)
		}
	}
	live := map[string]bool{}
	for _, m := range kept {
		if !c.blobsOf(m.Digest, live) {
			return removed, nil
		}
	}
	ents, err := os.ReadDir(c.blobsDir())
	if err != nil {
		return removed, err
	}
	for _, e := range ents {
		if fi, err := e.Info(); err != nil || !fi.ModTime().Before(fresh) {
			continue
		}
		if !live[e.Name()] && !strings.Contains(e.Name(), ".tmp") {
			if err := os.Remove(filepath.Join(c.blobsDir(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
		}
	}
	return removed, nil
}

// blobsOf adds to live the hex digests of d's blobs: d itself and, for a manifest, its
// config and layers, for an index, its children's (a child not cached is skipped). It
// reports false when d's blob is there but cannot be read.
func (c *baseCache) blobsOf(d v1.Hash, live map[string]bool) bool {
	live[d.Hex] = true
	raw, err := c.readBlob(d)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	var probe struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return false
	}
	if probe.Config != nil {
		live[probe.Config.Digest.Hex] = true
	}
	for _, l := range probe.Layers {
		live[l.Digest.Hex] = true
	}
	for _, m := range probe.Manifests {
		if !c.blobsOf(m.Digest, live) {
			return false
		}
	}
	return true
}

// keepBudget is the end of a build for the workspace's CacheBudget: it applies the
// bound once the build's roots are unmounted, even when the client went away.
func (b *build) keepBudget(ctx context.Context, end func(context.Context) ([]CacheRecord, error)) {
	removed, err := end(context.WithoutCancel(ctx))
	if err != nil {
		b.emit(Warning{Message: fmt.Sprintf("Keeping the caches within --cache-max-size: %v", err)})
	}
	var n int64
	for _, r := range removed {
		n += r.Size
	}
	if len(removed) > 0 {
		b.emit(Debug{Message: fmt.Sprintf("Removed %d least recently used cache entries (%d bytes) to stay within the cache size bound", len(removed), n)})
	}
}
