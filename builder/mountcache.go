package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/atomicfile"
)

// DefaultMountCacheMaxBytes bounds the RUN --mount=type=cache directories of a
// workspace when Workspace.MountCacheMaxBytes is zero.
const DefaultMountCacheMaxBytes = 10 << 30

// MountCacheType is the CacheRecord type of a cache mount's directory, BuildKit's.
const MountCacheType = "exec.cachemount"

// mountCache keeps the directories of RUN --mount=type=cache across builds: one entry
// per cache id under dir, <sha256(id)>/ holding data/ (what the RUN sees), id (the id,
// for listings) and lock (flock(2)ed while a RUN uses the entry: shared for
// sharing=shared, exclusive for locked and private). An entry's modification time is
// when a RUN last used it; trim removes the least recently used entries beyond a
// size bound.
type mountCache struct {
	dir string
}

// mountCache returns the build's cache mount store, noting that it was used.
func (b *build) mountCache() *mountCache {
	dir := b.ws.MountCacheDir
	if dir == "" {
		dir = filepath.Join(b.ws.StateDir, "cache-mounts")
	}
	b.mountCacheUsed.Store(true)
	return &mountCache{dir: dir}
}

// trimMountCache applies the workspace's size bound after a build that used it.
func (b *build) trimMountCache() {
	if !b.mountCacheUsed.Load() {
		return
	}
	limit := b.ws.MountCacheMaxBytes
	if limit == 0 {
		limit = DefaultMountCacheMaxBytes
	}
	mc := b.mountCache()
	recs, err := mc.usage()
	if err == nil {
		_, err = mc.prune(CachePrune{MaxUsedSpace: limit}, recs, limit)
	}
	if err != nil {
		b.emit(Warning{Message: fmt.Sprintf("Trimming the cache mounts in %s: %v", mc.dir, err)})
	}
}

func (c *mountCache) entry(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:]))
}

// storeID is the id a mount's entry is stored under: its cache id, and its mode,
// uid and gid when it sets any. BuildKit seeds such a cache from a directory with
// that mode and owner and keys the cache on the seed too, so the same id with other
// (or no) options is another cache.
func storeID(m runMount) string {
	if m.Mode == nil && m.UID == nil && m.GID == nil {
		return m.id
	}
	opt := func(p *uint64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("%s (mode=%s uid=%s gid=%s)", m.id, opt(m.Mode), opt(m.UID), opt(m.GID))
}

// acquire returns the directory a RUN's cache mount shows and the function that
// releases it. With sharing=private and the entry busy, the directory is a fresh one
// under scratch that is dropped with it.
func (c *mountCache) acquire(ctx context.Context, m runMount, seed *cacheSeed, scratch string) (string, func(), error) {
	id := storeID(m)
	if seed != nil {
		id += " from " + seed.key
	}
	entry := c.entry(id)
	if err := os.MkdirAll(entry, 0o700); err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(filepath.Join(entry, "id")); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(filepath.Join(entry, "id"), []byte(id), 0o600); err != nil {
			return "", nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(entry, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, err
	}
	switch m.CacheSharing {
	case instructions.MountSharingLocked:
		err = flockCtx(ctx, lock, unix.LOCK_EX, false)
	case instructions.MountSharingPrivate:
		err = flockCtx(ctx, lock, unix.LOCK_EX, true)
		if errors.Is(err, unix.EWOULDBLOCK) {
			lock.Close()
			return newCacheDir(scratch, m, seed)
		}
	default:
		err = flockCtx(ctx, lock, unix.LOCK_SH, false)
	}
	if err != nil {
		lock.Close()
		return "", nil, err
	}
	release := func() { lock.Close() }
	now := time.Now()
	_ = os.Chtimes(entry, now, now)
	data := filepath.Join(entry, "data")
	if _, err := os.Lstat(data); errors.Is(err, fs.ErrNotExist) {
		tmp, _, err := newCacheDir(filepath.Join(entry, "new-"+randomID()[:12]), m, seed)
		if err == nil {
			err = os.Rename(tmp, data)
			_ = os.RemoveAll(filepath.Dir(tmp))
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			release()
			return "", nil, err
		}
	}
	return data, release, nil
}

// cacheSeed is what a cache mount with from= starts with: key identifies it (the
// stage's or image's files), fill copies them into a new cache directory.
type cacheSeed struct {
	key  string
	fill func(data string) error
}

// newCacheDir makes dir/data with the mount's mode (0755) and owner (root), empty or
// filled from seed, for a new cache.
func newCacheDir(dir string, m runMount, seed *cacheSeed) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return "", nil, err
	}
	if seed != nil {
		if err := seed.fill(data); err != nil {
			return "", nil, err
		}
	}
	if err := chownMode(data, modeOf(m.Mount, 0o755), m.UID, m.GID); err != nil {
		return "", nil, err
	}
	return data, func() { _ = os.RemoveAll(dir) }, nil
}

// usage lists the entries as CacheRecords of type exec.cachemount (their ids as
// descriptions), least recently used first. An entry a RUN holds is InUse.
func (c *mountCache) usage() ([]CacheRecord, error) {
	ents, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []CacheRecord
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != sha256.Size*2 {
			continue // not an entry, or one a prune is removing
		}
		entry := filepath.Join(c.dir, e.Name())
		fi, err := os.Stat(entry)
		if err != nil {
			continue
		}
		id, _ := os.ReadFile(filepath.Join(entry, "id"))
		rec := CacheRecord{
			ID: e.Name(), Type: MountCacheType, Description: "cached mount " + string(id),
			Size: DirSize(entry), CreatedAt: fi.ModTime(), LastUsedAt: fi.ModTime(),
		}
		if st, ok := fi.Sys().(*unix.Stat_t); ok {
			rec.CreatedAt = time.Unix(st.Ctim.Unix())
			if rec.CreatedAt.After(rec.LastUsedAt) {
				rec.CreatedAt = rec.LastUsedAt
			}
		}
		rec.InUse = busy(filepath.Join(entry, "lock"))
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsedAt.Before(out[j].LastUsedAt) })
	return out, nil
}

// prune removes the entries p selects from recs (see CachePrune.Select), each while
// holding its lock exclusively so that no RUN is using it, and returns those removed.
func (c *mountCache) prune(p CachePrune, recs []CacheRecord, keepBytes int64) ([]CacheRecord, error) {
	var removed []CacheRecord
	for _, r := range p.Select(recs, time.Now(), keepBytes) {
		entry := filepath.Join(c.dir, r.ID)
		lock, err := os.OpenFile(filepath.Join(entry, "lock"), os.O_RDWR, 0)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		if lock != nil {
			if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
				lock.Close()
				continue // a RUN took it meanwhile
			}
		}
		// Moved aside first: a RUN opening the entry from now on starts a new one.
		gone := entry + ".removing"
		err = os.Rename(entry, gone)
		if lock != nil {
			lock.Close()
		}
		if err != nil {
			return removed, err
		}
		if err := os.RemoveAll(gone); err != nil {
			return removed, err
		}
		removed = append(removed, r)
	}
	return removed, nil
}

// busy reports whether a RUN holds the lock file.
func busy(lockFile string) bool {
	f, err := os.OpenFile(lockFile, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
}

// DirSize is the apparent size of the regular files under dir, best effort (what
// BuildKit reports too; a compressing filesystem may use less): the size the caches
// of every door report.
func DirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// MountCacheUsage lists the cache mount directories in dir (Workspace.MountCacheDir)
// as records of type exec.cachemount, least recently used first. A missing directory
// holds none.
func MountCacheUsage(dir string) ([]CacheRecord, error) {
	return (&mountCache{dir: dir}).usage()
}

// PruneMountCache removes the cache mount directories in dir that p selects (never
// one a RUN is using) and returns their records.
func PruneMountCache(dir string, p CachePrune) ([]CacheRecord, error) {
	c := &mountCache{dir: dir}
	recs, err := c.usage()
	if err != nil {
		return nil, err
	}
	keep, err := p.KeepBytes(dir)
	if err != nil && len(recs) > 0 {
		return nil, err
	}
	return c.prune(p, recs, keep)
}

// sleepCtx waits a little, or until ctx ends.
func sleepCtx(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
