package buildkitapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/builder"
)

// minMemoryContext is the least room in memory worth receiving a context into: with
// less, it goes to disk at once.
const minMemoryContext = 1 << 20

// contextCache keeps the last context each client sent, by the session's shared key
// and the local's name, so that the next transfer only sends what changed: BuildKit's
// incremental context transfer. It holds at most max entries, dropping the least
// recently used; a context in use by a build is never dropped or shared.
//
// With a memory directory (a tmpfs), contexts are received there first, as /build's
// archives are: the memory-resident ones hold at most memBytes of files together; a
// transfer that would hold more moves its context to disk and goes on there, and a new
// context makes room by dropping the least recently used idle ones in memory.
type contextCache struct {
	dir      string
	max      int
	memDir   string
	memBytes int64

	mu      sync.Mutex
	seq     int
	entries map[string]*cacheEntry
	inMem   map[*cacheEntry]bool // every entry whose directory is in memDir
	closed  bool
	indexed atomic.Int64 // how many more entries the contexts' indexes may hold
}

type cacheEntry struct {
	key  string
	path string
	busy bool
	used time.Time
	// mem says path is in the memory directory; size is then the bytes of its files
	// while idle, and the bytes it may hold (its share of memory) while busy.
	mem  bool
	size int64
	// index describes what path holds, for the next transfer and the build.
	index *contextIndex
}

// newContextCache returns the cache under stateDir, and under memDir when that is
// not empty and memBytes is at least minMemoryContext. Entries of an earlier process
// are removed when the cache is first used: their owners are unknown.
func newContextCache(stateDir string, maxEntries int, memDir string, memBytes int64) *contextCache {
	if maxEntries <= 0 {
		maxEntries = DefaultContextCacheEntries
	}
	c := &contextCache{dir: filepath.Join(stateDir, "buildkit-contexts"), max: maxEntries}
	c.indexed.Store(maxIndexedEntries)
	if memDir != "" && memBytes >= minMemoryContext {
		// one directory per state directory: two servers never share one, and a
		// server started again on the same state removes what the last one left
		sum := sha256.Sum256([]byte(c.dir))
		c.memDir = filepath.Join(memDir, "kiln-buildkit-contexts-"+hex.EncodeToString(sum[:6]))
		c.memBytes = memBytes
	}
	return c
}

// contextLease is one build's use of a cache entry: the directory its context is
// received into.
type contextLease struct {
	c    *contextCache
	e    *cacheEntry
	once sync.Once
}

// dir is where the context is.
func (l *contextLease) dir() string {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.e.path
}

// memLimit is how many bytes of files the context may hold where it is, at least 1
// in memory (where its share may be nothing): 0 when it is on disk (no bound but the
// server's limits).
func (l *contextLease) memLimit() int64 {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if !l.e.mem {
		return 0
	}
	return max(l.e.size, 1)
}

// release gives the entry back: keep says whether its content is a complete
// transfer, worth keeping for the key's next build, and size is then its files' bytes.
func (l *contextLease) release(keep bool, size int64) {
	l.once.Do(func() { l.c.release(l.e, keep, size) })
}

// acquire returns the lease of key's entry, or of a new one when key has none or
// its entry is busy. An empty key (a client without a shared key) gets a fresh
// directory that is never reused.
//
// The key is the client's choice, as in BuildKit: a client that reuses another's key
// starts from that client's last context, and file sync sends only what differs by
// metadata (size, mode, mtime). The clients of one server are one trust domain for
// this cache (docs/buildkit.md).
func (c *contextCache) acquire(key string) (*contextLease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		for _, d := range []string{c.dir, c.memDir} {
			if d == "" {
				continue
			}
			if err := os.RemoveAll(d); err != nil {
				return nil, err
			}
		}
		c.entries, c.inMem = map[string]*cacheEntry{}, map[*cacheEntry]bool{}
	}
	e := c.entries[key]
	if key == "" || e == nil || e.busy {
		ne, err := c.newEntryLocked(key, c.memDir != "" && !c.closed && c.makeRoomLocked(nil) >= minMemoryContext)
		if err != nil {
			return nil, err
		}
		if e == nil && key != "" {
			c.entries[key] = ne
		}
		e = ne
	}
	if e.mem {
		// its share: what the other memory-resident contexts leave
		e.size = c.makeRoomLocked(e)
	}
	e.busy, e.used = true, time.Now()
	return &contextLease{c: c, e: e}, nil
}

// newEntryLocked makes a new entry's directory, in memory or on disk.
func (c *contextCache) newEntryLocked(key string, mem bool) (*cacheEntry, error) {
	if mem {
		if dir, err := c.newDirLocked(c.memDir); err == nil {
			e := &cacheEntry{key: key, path: dir, mem: true, index: newContextIndex(&c.indexed)}
			c.inMem[e] = true
			return e, nil
		}
	}
	dir, err := c.newDirLocked(c.dir)
	if err != nil {
		return nil, err
	}
	return &cacheEntry{key: key, path: dir, index: newContextIndex(&c.indexed)}, nil
}

// newDirLocked makes a new, empty directory for a context in parent.
func (c *contextCache) newDirLocked(parent string) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	c.seq++
	dir := filepath.Join(parent, fmt.Sprintf("ctx-%d", c.seq))
	return dir, os.Mkdir(dir, 0o700)
}

// makeRoomLocked returns the memory left for one context besides the others (but
// self) there, after dropping the least recently used idle ones when less than half
// of the memory is left.
func (c *contextCache) makeRoomLocked(self *cacheEntry) int64 {
	free := func() int64 {
		n := c.memBytes
		for e := range c.inMem {
			if e != self {
				n -= e.size
			}
		}
		return n
	}
	if free() >= c.memBytes/2 {
		return free()
	}
	idle := make([]*cacheEntry, 0, len(c.inMem))
	for e := range c.inMem {
		if !e.busy && e != self {
			idle = append(idle, e)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].used.Before(idle[j].used) })
	for _, e := range idle {
		if free() >= c.memBytes/2 {
			break
		}
		c.dropLocked(e)
	}
	return free()
}

// dropLocked removes an idle entry and its directory.
func (c *contextCache) dropLocked(e *cacheEntry) {
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	delete(c.inMem, e)
	e.index.release()
	os.RemoveAll(e.path)
}

// release gives an entry back, keeping it only when complete and still the key's.
func (c *contextCache) release(e *cacheEntry, keep bool, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.busy, e.used = false, time.Now()
	e.index.dropListing()
	if e.mem {
		e.size = size
	}
	if !keep || c.entries[e.key] != e || (e.mem && c.closed) {
		c.dropLocked(e)
		return
	}
	c.evictLocked()
}

// evictLocked drops the least recently used idle entries over the bound.
func (c *contextCache) evictLocked() {
	if len(c.entries) <= c.max {
		return
	}
	idle := make([]*cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		if !e.busy {
			idle = append(idle, e)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].used.Before(idle[j].used) })
	for _, e := range idle {
		if len(c.entries) <= c.max {
			return
		}
		c.dropLocked(e)
	}
}

// closeMemory gives the memory back when the server stops: idle contexts in memory
// go now, busy ones when their builds end.
func (c *contextCache) closeMemory() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for e := range c.inMem {
		if !e.busy {
			c.dropLocked(e)
		}
	}
	if c.memDir != "" && len(c.inMem) == 0 {
		os.Remove(c.memDir)
	}
}

// size is the number of cached contexts.
func (c *contextCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// usage reports the cached contexts: their count and bytes, for DiskUsage.
func (c *contextCache) usage() []cacheUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cacheUsage
	for _, e := range c.entries {
		out = append(out, cacheUsage{key: e.key, path: e.path, busy: e.busy, used: e.used, size: builder.DirSize(e.path)})
	}
	return out
}

type cacheUsage struct {
	key, path string
	busy      bool
	used      time.Time
	size      int64
}
