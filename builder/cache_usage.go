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
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CacheRecord is one entry of a build cache as `docker system df -v` lists it: a
// cached step of the step cache or an image of the base cache.
type CacheRecord struct {
	// ID is the step's cache key or the base image's manifest digest (hex).
	ID string
	// Type is "regular" for a step (BuildKit's word for a cached result) and
	// "base-image" for an image of the base cache.
	Type string
	// Description is the step's instruction (its history's created_by) or the base
	// image's reference.
	Description string
	// Size is what the entry holds on disk. A blob several entries name is counted in
	// the first of them only, so sizes add up to the disk used. Shared says that all of
	// an entry's data is counted in an earlier entry (a step whose layer another step
	// made too, a base image cached under two names).
	Size   int64
	Shared bool
	// InUse says the entry is in use and no prune removes it.
	InUse bool
	// CreatedAt is when the entry was stored, LastUsedAt when a build last used it.
	CreatedAt, LastUsedAt time.Time
}

// Usage lists the step cache's entries, sorted by ID (docker system df). An entry
// that cannot be read is skipped: Get treats it as a miss, Prune removes it.
func (c *LocalCache) Usage(ctx context.Context) ([]CacheRecord, error) {
	unlock, err := c.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return c.usageLocked()
}

// usageLocked is Usage under the cache's lock, shared or exclusive.
func (c *LocalCache) usageLocked() ([]CacheRecord, error) {
	dir := filepath.Join(c.dir, "steps")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var out []CacheRecord
	counted := map[v1.Hash]bool{}
	for _, de := range entries {
		name := de.Name()
		if isTemp(name) || !strings.HasSuffix(name, ".json") {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		var e localEntry
		if err != nil || json.Unmarshal(raw, &e) != nil {
			continue
		}
		rec := CacheRecord{
			ID:          strings.TrimSuffix(name, ".json"),
			Type:        "regular",
			Description: e.History.CreatedBy,
			Size:        fi.Size(),
			CreatedAt:   e.Stored,
			LastUsedAt:  fi.ModTime(),
		}
		if e.Layer != nil {
			if counted[e.Layer.Digest] {
				rec.Shared = true
			} else {
				counted[e.Layer.Digest] = true
				rec.Size += e.Layer.Size
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

// BaseCacheUsage lists the images of the base cache in dir (kaniko's --cache-dir, a
// kiln serve's cache/base), sorted by reference. A missing directory is an empty cache.
func BaseCacheUsage(dir string) ([]CacheRecord, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	c := &baseCache{dir: dir}
	ix, err := c.index()
	if err != nil {
		return nil, err
	}
	var out []CacheRecord
	counted := map[v1.Hash]bool{}
	for _, desc := range ix.Manifests {
		rec := CacheRecord{
			ID:          desc.Digest.Hex,
			Type:        "base-image",
			Description: desc.Annotations[refNameAnnotation],
		}
		if rec.Description == "" {
			rec.Description = desc.Digest.String()
		}
		if fi, err := os.Stat(c.blobPath(desc.Digest)); err == nil {
			rec.CreatedAt, rec.LastUsedAt = fi.ModTime(), fi.ModTime()
		}
		blobs := []v1.Descriptor{desc}
		if raw, err := c.readBlob(desc.Digest); err == nil {
			if m, err := v1.ParseManifest(bytes.NewReader(raw)); err == nil {
				blobs = append(blobs, m.Config)
				blobs = append(blobs, m.Layers...)
			}
		}
		rec.Shared = true
		for _, b := range blobs {
			if !counted[b.Digest] {
				counted[b.Digest] = true
				rec.Size += b.Size
				rec.Shared = false
			}
		}
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Description < out[j].Description })
	return out, nil
}
