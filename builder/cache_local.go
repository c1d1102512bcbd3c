package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/atomicfile"
	"github.com/kiln-build/kiln/ctxio"
	"github.com/kiln-build/kiln/snapshot"
)

// LocalCache is a Cache in a directory on this machine, the server-local layer cache
// Docker's classic builder has. The directory holds
//
//	steps/<key hex>.json    one entry per step: history, config, layer descriptor
//	inputs/<slot hex>.json  the inputs last stored per slot (InputIndex)
//	blobs/sha256-<hex>      layer blobs, compressed as the build wrote them
//	lock                    shared by readers and writers, exclusive for Prune
//
// Every file is written under a temporary name and renamed into place, so a reader
// sees a whole file or none; blobs are written before the entries naming them. Builds
// in this process and in others may use one directory at once.
type LocalCache struct {
	dir string
	ttl time.Duration
	now func() time.Time
}

var (
	_ Cache      = (*LocalCache)(nil)
	_ InputIndex = (*LocalCache)(nil)
)

// LocalCacheOption configures NewLocalCache.
type LocalCacheOption func(*LocalCache)

// WithTTL makes entries stored longer than ttl ago misses (kaniko's --cache-ttl);
// zero, the default, keeps them until pruned.
func WithTTL(ttl time.Duration) LocalCacheOption {
	return func(c *LocalCache) { c.ttl = ttl }
}

// withClock replaces the clock, for tests of expiry and pruning.
func withClock(now func() time.Time) LocalCacheOption {
	return func(c *LocalCache) { c.now = now }
}

// NewLocalCache opens (creating it if needed) the cache directory dir. For layers to
// be hard-linked rather than copied, dir should be on the filesystem of the
// workspace's state directory.
func NewLocalCache(dir string, opts ...LocalCacheOption) (*LocalCache, error) {
	c := &LocalCache{dir: dir, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	for _, sub := range []string{"steps", "inputs", "blobs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating cache directory: %w", err)
		}
	}
	return c, nil
}

// localEntry is a step's file.
type localEntry struct {
	Stored  time.Time   `json:"stored"`
	Layer   *localLayer `json:"layer,omitempty"`
	History v1.History  `json:"history"`
	Config  v1.Config   `json:"config"`
}

// localLayer describes a blob under blobs/.
type localLayer struct {
	Digest    v1.Hash         `json:"digest"`
	DiffID    v1.Hash         `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

// Get returns the step stored under key. An entry that cannot be read is an error
// (the builder warns and runs the step); a missing or expired entry, or one whose
// layer was pruned, is ErrCacheMiss.
func (c *LocalCache) Get(ctx context.Context, key v1.Hash) (*CachedStep, error) {
	unlock, err := c.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := c.path("steps", key)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrCacheMiss)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry %s: %w", p, err)
	}
	var e localEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("cache entry %s is corrupt: %w", p, err)
	}
	if c.ttl > 0 && c.now().Sub(e.Stored) > c.ttl {
		return nil, fmt.Errorf("%s expired: %w", key, ErrCacheMiss)
	}
	step := &CachedStep{History: e.History, Config: e.Config}
	now := c.now()
	if e.Layer != nil {
		bp, err := c.path("blobs", e.Layer.Digest)
		if err != nil {
			return nil, fmt.Errorf("cache entry %s: %w", p, err)
		}
		fi, err := os.Stat(bp)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("layer %s of %s is gone: %w", e.Layer.Digest, key, ErrCacheMiss)
		}
		if err != nil {
			return nil, fmt.Errorf("cache blob %s: %w", bp, err)
		}
		if fi.Size() != e.Layer.Size {
			return nil, fmt.Errorf("cache blob %s has %d bytes, want %d", bp, fi.Size(), e.Layer.Size)
		}
		step.Layer = snapshot.LayerFromFile(bp, e.Layer.Digest, e.Layer.DiffID, e.Layer.Size, e.Layer.MediaType)
		_ = os.Chtimes(bp, now, now) // Prune keeps what was used lately; best effort
	}
	_ = os.Chtimes(p, now, now)
	return step, nil
}

// Put stores step under key: its layer first (hard-linked when the layer is a blob
// file on the same filesystem, else copied and verified), then the entry.
func (c *LocalCache) Put(ctx context.Context, key v1.Hash, step *CachedStep) error {
	unlock, err := c.lock(ctx, false)
	if err != nil {
		return err
	}
	defer unlock()
	p, err := c.path("steps", key)
	if err != nil {
		return err
	}
	e := localEntry{Stored: c.now().UTC(), History: step.History, Config: step.Config}
	if step.Layer != nil {
		if e.Layer, err = c.storeBlob(ctx, step.Layer); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("encoding cache entry %s: %w", key, err)
	}
	return atomicfile.WriteFile(p, raw, 0o600)
}

// storeBlob makes sure blobs/ holds the layer's compressed blob.
func (c *LocalCache) storeBlob(ctx context.Context, l v1.Layer) (*localLayer, error) {
	var ll localLayer
	var err error
	if ll.Digest, err = l.Digest(); err != nil {
		return nil, err
	}
	if ll.DiffID, err = l.DiffID(); err != nil {
		return nil, err
	}
	if ll.Size, err = l.Size(); err != nil {
		return nil, err
	}
	if ll.MediaType, err = l.MediaType(); err != nil {
		return nil, err
	}
	dst, err := c.path("blobs", ll.Digest)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dst); err == nil && fi.Size() == ll.Size {
		return &ll, nil
	}
	tmp := fmt.Sprintf("%s.tmp-%s", dst, randomID()[:16])
	if fl, ok := l.(*snapshot.Layer); ok && os.Link(fl.Path(), tmp) == nil {
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("storing cache blob %s: %w", dst, err)
		}
		return &ll, nil
	}
	if err := copyBlob(ctx, l, tmp, ll.Digest); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("storing cache blob %s: %w", dst, err)
	}
	return &ll, nil
}

// copyBlob writes the layer's compressed stream to path, checking its digest.
func copyBlob(ctx context.Context, l v1.Layer, path string, want v1.Hash) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating cache blob: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), ctxio.NewReader(ctx, rc))
	if err == nil {
		err = f.Sync() // the rename that follows must not outlive the data in a power cut
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying layer %s into the cache: %w", want, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("copying layer %s into the cache: its content has digest sha256:%s", want, got)
	}
	return nil
}

// localInputs is a slot's file.
type localInputs struct {
	Inputs []CacheInput `json:"inputs"`
}

// Inputs returns the inputs last recorded for slot.
func (c *LocalCache) Inputs(ctx context.Context, slot v1.Hash) ([]CacheInput, error) {
	p, err := c.path("inputs", slot)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", slot, ErrCacheMiss)
	}
	if err != nil {
		return nil, err
	}
	var in localInputs
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("cache inputs %s are corrupt: %w", p, err)
	}
	return in.Inputs, ctx.Err()
}

// PutInputs records the inputs of the step last stored for slot.
func (c *LocalCache) PutInputs(ctx context.Context, slot v1.Hash, inputs []CacheInput) error {
	p, err := c.path("inputs", slot)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(localInputs{Inputs: inputs})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, raw, 0o600)
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Entries int   // step entries removed
	Blobs   int   // layer blobs removed
	Bytes   int64 // bytes freed, entries and blobs
}

// Prune removes the entries not used for olderThan (all of them when olderThan is zero
// or less), the recorded inputs as old, and every blob no remaining entry names
// (docker builder prune). It waits for the builds reading or writing the cache to be
// done with their current step, and holds them off while it runs.
func (c *LocalCache) Prune(ctx context.Context, olderThan time.Duration) (PruneReport, error) {
	_, rep, err := c.PruneRecords(ctx, CachePrune{KeepDuration: olderThan})
	return rep, err
}

// sweep removes the files of sub for which drop says so, counting their bytes.
func (c *LocalCache) sweep(sub string, drop func(name string, fi fs.FileInfo) bool, rep *PruneReport) error {
	dir := filepath.Join(c.dir, sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, de := range entries {
		fi, err := de.Info()
		if err != nil {
			continue // removed under us
		}
		if !drop(de.Name(), fi) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, de.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pruning the cache: %w", err)
		}
		rep.Bytes += fi.Size()
	}
	return nil
}

// lock takes the cache's lock, shared or exclusive, and returns how to release it.
func (c *LocalCache) lock(ctx context.Context, exclusive bool) (func(), error) {
	fl := flock.New(filepath.Join(c.dir, "lock"))
	try := fl.TryRLockContext
	if exclusive {
		try = fl.TryLockContext
	}
	ok, err := try(ctx, 20*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("locking the cache %s: %w", c.dir, err)
	}
	if !ok {
		return nil, fmt.Errorf("locking the cache %s: %w", c.dir, ctx.Err())
	}
	return func() { _ = fl.Unlock() }, nil
}

// path is the file for a digest under sub, refusing anything but a sha256.
func (c *LocalCache) path(sub string, h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 || strings.Trim(h.Hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("invalid cache digest %q", h)
	}
	name := h.Hex + ".json"
	if sub == "blobs" {
		name = h.Algorithm + "-" + h.Hex
	}
	return filepath.Join(c.dir, sub, name), nil
}

func isTemp(name string) bool { return strings.Contains(name, ".tmp-") }
