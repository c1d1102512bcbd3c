// Package registrycache keeps kiln's build cache in a container registry, laid out as
// kaniko's --cache-repo is: each step is an image in the cache repository, tagged
// with the step's cache key in hex (<repo>:<key hex>), holding the step's layer (or
// none) and created when the step was stored, which is what --cache-ttl is measured
// against. Where kaniko's image holds only the layer, kiln's also carries the step's
// history entry (config.history) and the container config after the step
// (config.config), so that a hit reproduces the image byte for byte.
//
// Keys are kiln's (builder/cache_key.go), not kaniko's: the two tools share a
// repository without ever reading each other's entries.
//
// Stores run in the background while the build goes on; Flush waits for them.
package registrycache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

// Cache is a builder.Cache in a registry repository. It is safe for concurrent use.
type Cache struct {
	repo     name.Repository
	remote   []remote.Option
	ttl      time.Duration
	readOnly bool
	spool    string
	logf     func(format string, args ...any)
	now      func() time.Time
	compress LayerCompressor

	slots   chan struct{} // one per store queued or running: Put waits when full
	workers chan struct{} // one per store running

	mu      sync.Mutex
	pending map[v1.Hash]*builder.CachedStep // stored by Put, not pushed yet
	tallies map[any]*tally                  // by builder.CacheScope of Put's context
	refused error                           // the registry refused a push's credentials
}

// tally is what one scope's stores (one build's, builder.WithCacheScope) came to since
// its last Flush.
type tally struct {
	wg      sync.WaitGroup
	stored  int     // pushes done
	errs    []error // pushes failed
	skipped int     // stores dropped after refused
}

var _ builder.Cache = (*Cache)(nil)

// Option configures New.
type Option func(*Cache)

// WithRemoteOptions sets how the registry is reached, for lookups and pushes alike:
// credentials (remote.WithAuthFromKeychain), transport, user agent.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(c *Cache) { c.remote = append(c.remote, opts...) }
}

// WithTTL makes entries created longer than ttl ago misses (kaniko's --cache-ttl,
// which compares the cache image's created time). Zero, the default, never expires
// them.
func WithTTL(ttl time.Duration) Option {
	return func(c *Cache) { c.ttl = ttl }
}

// WithReadOnly looks entries up but never pushes any (kaniko's --no-push-cache).
func WithReadOnly() Option {
	return func(c *Cache) { c.readOnly = true }
}

// WithSpoolDir hard-links each stored layer's blob into dir until it is pushed, so the
// push does not depend on the build keeping its own copy. dir should be on the
// filesystem of the build's state directory; a layer that cannot be linked there is
// pushed from where it is, and must then stay readable until Flush returns.
func WithSpoolDir(dir string) Option {
	return func(c *Cache) { c.spool = dir }
}

// WithUploads bounds the background stores: at most workers pushes at once, and at
// most queue stores waiting or running before Put blocks. The default is 3 and 16.
func WithUploads(workers, queue int) Option {
	return func(c *Cache) {
		c.workers = make(chan struct{}, max(workers, 1))
		c.slots = make(chan struct{}, max(queue, workers, 1))
	}
}

// WithLogf receives progress lines ("Pushing layer ... to cache now", as kaniko logs
// them). It is called from background goroutines.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(c *Cache) { c.logf = logf }
}

// WithClock replaces the clock that stamps stored entries and judges their age.
func WithClock(now func() time.Time) Option {
	return func(c *Cache) { c.now = now }
}

// New returns the cache kept in repo.
func New(repo name.Repository, opts ...Option) *Cache {
	c := &Cache{
		repo:    repo,
		logf:    func(string, ...any) {},
		now:     time.Now,
		pending: map[v1.Hash]*builder.CachedStep{},
		tallies: map[any]*tally{},
	}
	WithUploads(3, 16)(c)
	for _, o := range opts {
		o(c)
	}
	return c
}

// Repository returns the cache repository.
func (c *Cache) Repository() name.Repository { return c.repo }

// Tag is where the entry for key lives: <repo>:<key hex>, kaniko's scheme.
func (c *Cache) Tag(key v1.Hash) name.Tag { return c.repo.Tag(key.Hex) }

// Get returns the step stored under key: its config and history from the cache
// image's config, its layer as a remote layer downloaded only when the build needs
// its bytes. A missing or expired entry is builder.ErrCacheMiss; a registry that
// cannot be read, or an image that is not a kiln cache entry, is another error.
func (c *Cache) Get(ctx context.Context, key v1.Hash) (*builder.CachedStep, error) {
	c.mu.Lock()
	p, ok := c.pending[key]
	c.mu.Unlock()
	if ok {
		return p, nil // a step stored moments ago, by this build or another
	}
	ref := c.Tag(key)
	desc, err := remote.Get(ref, append(c.remote, remote.WithContext(ctx))...)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("%s: %w", ref, builder.ErrCacheMiss)
		}
		return nil, fmt.Errorf("looking up %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("cache entry %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config of cache entry %s: %w", ref, err)
	}
	if age := c.now().Sub(cf.Created.Time); c.ttl > 0 && age > c.ttl {
		return nil, fmt.Errorf("%s was stored %s ago, longer than the cache TTL %s: %w",
			ref, age.Round(time.Second), c.ttl, builder.ErrCacheMiss)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("cache entry %s: %w", ref, err)
	}
	if len(cf.History) != 1 || len(layers) > 1 || cf.History[0].EmptyLayer != (len(layers) == 0) {
		return nil, fmt.Errorf("%s is not a kiln cache entry (%d history entries, %d layers)", ref, len(cf.History), len(layers))
	}
	step := &builder.CachedStep{History: cf.History[0], Config: cf.Config}
	if len(layers) == 1 {
		if err := c.checkCompression(ref, layers[0]); err != nil {
			return nil, err
		}
		step.Layer = layers[0]
	}
	return step, nil
}

// notFound reports a registry's answer that the tag or the repository does not exist.
func notFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// refusal reports a registry's answer that the credentials may not do this: pushing
// again with them is pointless.
func refusal(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	return terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden
}
