package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/patternmatcher/ignorefile"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
)

// DefaultContextCacheEntries is how many clients' contexts the server keeps for
// incremental transfer when Config.ContextCacheEntries is 0.
const DefaultContextCacheEntries = 16

// sources are the Dockerfile and the context of one build, received from the client.
type sources struct {
	dockerfile     []byte
	dockerfileName string
	context        *contexts.Context
	release        func(keep bool)
}

// receive pulls the Dockerfile, the ignore file and the context through the client's
// session, in BuildKit's order: the Dockerfile's local first, then the context's
// ignore file, then the context with the ignore patterns, which the client applies.
// The context goes into the client's entry of the context cache, so a rebuild
// transfers only the files that changed since its last build.
func (s *Server) receive(ctx context.Context, caller session.Caller, o *frontendOptions, p *progress) (*sources, error) {
	scratch, err := os.MkdirTemp(s.cfg.Workspace.StateDir, "bk-files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)

	done := p.vertex("[internal] load build definition from " + path.Base(o.filename))
	dfDir, ignoreDir := filepath.Join(scratch, "dockerfile"), filepath.Join(scratch, "ignore")
	for _, d := range []string{dfDir, ignoreDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			done(err)
			return nil, err
		}
	}
	dfName := path.Base(o.filename)
	err = filesync.FSSync(ctx, caller, filesync.FSSendRequestOpt{
		Name:            o.dockerfileKey,
		IncludePatterns: []string{o.filename, o.filename + ".dockerignore"},
		FollowPaths:     []string{o.filename, o.filename + ".dockerignore"},
		DestDir:         dfDir,
		Filter:          limitFilter(nil, 2, 2*contexts.MaxDockerfileBytes, "the Dockerfile's directory"),
	})
	if err != nil {
		done(err)
		return nil, fmt.Errorf("receiving the Dockerfile: %w", err)
	}
	df, err := contexts.ReadDockerfile(dfDir, o.filename)
	if err != nil {
		done(err)
		return nil, err
	}
	done(nil)

	done = p.vertex("[internal] load .dockerignore")
	patterns, err := s.ignorePatterns(ctx, caller, o, dfDir, ignoreDir)
	done(err)
	if err != nil {
		return nil, err
	}

	done = p.vertex("[internal] load build context")
	key := ""
	if caller.SharedKey() != "" {
		key = caller.SharedKey() + "/" + o.contextKey
	}
	dir, release, err := s.contexts.acquire(key)
	if err != nil {
		done(err)
		return nil, err
	}
	var limitErr error
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	filter := limitFilter(func(err error) { limitErr = err; cancel(err) },
		s.cfg.MaxContextEntries, s.cfg.MaxContextBytes, "the build context")
	var sent atomic.Int64
	start := time.Now()
	err = filesync.FSSync(sctx, caller, filesync.FSSendRequestOpt{
		Name:            o.contextKey,
		ExcludePatterns: patterns,
		DestDir:         dir,
		Filter:          filter,
		ProgressCb: func(n int, last bool) {
			sent.Store(int64(n))
			p.transfer("transferring context", int64(n), last)
		},
	})
	if limitErr != nil {
		err = limitErr
	}
	if err != nil {
		release(false)
		done(err)
		return nil, fmt.Errorf("receiving the build context: %w", err)
	}
	done(nil)
	bctx, err := contexts.FromDirPatterns(dir, patterns)
	if err != nil {
		release(false)
		return nil, err
	}
	s.cfg.Log.WithFields(map[string]any{"bytes": sent.Load(), "duration": time.Since(start)}).Debug("buildkit: context received")
	if obs := s.cfg.Workspace.Observer; obs != nil {
		obs.Transferred(builder.TransferContext, sent.Load())
	}
	return &sources{dockerfile: df, dockerfileName: dfName, context: bctx, release: release}, nil
}

// ignorePatterns returns the patterns that choose the context's files: the
// Dockerfile's own <Dockerfile>.dockerignore when there is one, else the context's
// .dockerignore, as BuildKit's Dockerfile frontend does.
func (s *Server) ignorePatterns(ctx context.Context, caller session.Caller, o *frontendOptions, dfDir, scratch string) ([]string, error) {
	if f, err := os.Open(filepath.Join(dfDir, filepath.FromSlash(o.filename)+".dockerignore")); err == nil {
		defer f.Close()
		return readIgnore(f, path.Base(o.filename)+".dockerignore")
	}
	err := filesync.FSSync(ctx, caller, filesync.FSSendRequestOpt{
		Name:            o.contextKey,
		IncludePatterns: []string{".dockerignore"},
		DestDir:         scratch,
		Filter:          limitFilter(nil, 2, contexts.MaxDockerfileBytes, ".dockerignore"),
	})
	if err != nil {
		return nil, fmt.Errorf("receiving .dockerignore: %w", err)
	}
	f, err := os.Open(filepath.Join(scratch, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readIgnore(f, ".dockerignore")
}

func readIgnore(f *os.File, name string) ([]string, error) {
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return patterns, nil
}

// limitFilter returns a file-sync filter that fails the transfer (through fail, or by
// skipping the rest when fail is nil) once what it has seen exceeds maxEntries
// entries or maxBytes bytes of file content; 0 means no bound.
func limitFilter(fail func(error), maxEntries int, maxBytes int64, what string) func(string, *fstypes.Stat) bool {
	var mu sync.Mutex
	var entries int
	var bytes int64
	var failed bool
	return func(p string, st *fstypes.Stat) bool {
		mu.Lock()
		defer mu.Unlock()
		if failed {
			return false
		}
		entries++
		if st != nil && os.FileMode(st.Mode).IsRegular() {
			bytes += st.Size
		}
		var err error
		switch {
		case maxEntries > 0 && entries > maxEntries:
			err = fmt.Errorf("%s holds more than %d files and directories (kiln serve --max-context-entries)", what, maxEntries)
		case maxBytes > 0 && bytes > maxBytes:
			err = fmt.Errorf("%s holds more than %d MiB (kiln serve --max-context-size)", what, maxBytes>>20)
		}
		if err != nil {
			failed = true
			if fail != nil {
				fail(err)
			}
			return false
		}
		return true
	}
}

// contextCache keeps the last context each client sent, by the session's shared key
// and the local's name, so that the next transfer only sends what changed: BuildKit's
// incremental context transfer. It holds at most max entries, dropping the least
// recently used; a context in use by a build is never dropped or shared.
type contextCache struct {
	dir string
	max int

	mu      sync.Mutex
	seq     int
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	key  string
	path string
	busy bool
	used time.Time
}

// newContextCache returns the cache under stateDir. Entries of an earlier process
// are removed when the cache is first used: their owners are unknown.
func newContextCache(stateDir string, maxEntries int) *contextCache {
	if maxEntries <= 0 {
		maxEntries = DefaultContextCacheEntries
	}
	return &contextCache{dir: filepath.Join(stateDir, "buildkit-contexts"), max: maxEntries}
}

// acquire returns the directory to receive key's context into, and the function that
// gives it back: keep says whether its content is a complete transfer, worth keeping
// for key's next build. An empty key (a client without a shared key) gets a fresh
// directory that is never reused.
//
// The key is the client's choice, as in BuildKit: a client that reuses another's key
// starts from that client's last context, and file sync sends only what differs by
// metadata (size, mode, mtime). The clients of one server are one trust domain for
// this cache (docs/buildkit.md).
func (c *contextCache) acquire(key string) (string, func(keep bool), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		if err := os.RemoveAll(c.dir); err != nil {
			return "", nil, err
		}
		c.entries = map[string]*cacheEntry{}
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return "", nil, err
	}
	e := c.entries[key]
	if key == "" || e == nil || e.busy {
		c.seq++
		dir := filepath.Join(c.dir, fmt.Sprintf("ctx-%d", c.seq))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", nil, err
		}
		ne := &cacheEntry{key: key, path: dir}
		if e == nil && key != "" {
			c.entries[key] = ne
		}
		e = ne
	}
	e.busy, e.used = true, time.Now()
	var once sync.Once
	return e.path, func(keep bool) { once.Do(func() { c.release(e, keep) }) }, nil
}

// release gives an entry back, keeping it only when complete and still the key's.
func (c *contextCache) release(e *cacheEntry, keep bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.busy, e.used = false, time.Now()
	if !keep || c.entries[e.key] != e {
		if c.entries[e.key] == e {
			delete(c.entries, e.key)
		}
		os.RemoveAll(e.path)
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
		delete(c.entries, e.key)
		os.RemoveAll(e.path)
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
