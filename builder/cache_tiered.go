package builder

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CacheFlusher is an optional capability of a Cache whose stores run in the
// background (builder/registrycache): Flush waits for those queued so far and reports
// the ones that failed. Build calls it on Workspace.SharedCache before it returns, so
// that the next build, on this server or another, finds every step this one stored.
type CacheFlusher interface {
	Flush(ctx context.Context) error
}

// tieredCache is the step cache of a workspace with a SharedCache (kiln serve
// --cache-repo): the local cache is the first level, the shared one the second. A
// step found only in the shared cache is copied into the local one, so the next build
// here finds it without asking the registry; every step stored goes to both.
type tieredCache struct {
	local, shared Cache
	observe       Observer // told of each lookup in the shared cache (CacheKindShared)
}

var _ InputIndex = tieredCache{}

// withSharedCache returns the cache a build uses: local alone without a shared cache,
// the shared one alone without a local one, else both as two levels whose shared
// lookups o is told of.
func withSharedCache(local, shared Cache, o Observer) Cache {
	switch {
	case shared == nil:
		return local
	case local == nil:
		return shared
	}
	return tieredCache{local: local, shared: shared, observe: observerOf(o)}
}

// Get looks in the local cache, then in the shared one. A local error other than a
// miss does not hide a shared hit; a shared hit that cannot be stored locally is still
// a hit, served from the shared cache.
func (t tieredCache) Get(ctx context.Context, key v1.Hash) (*CachedStep, error) {
	step, lerr := t.local.Get(ctx, key)
	if lerr == nil {
		return step, nil
	}
	step, err := t.shared.Get(ctx, key)
	t.observe.CacheLookup(CacheKindShared, err == nil)
	if err != nil {
		if errors.Is(err, ErrCacheMiss) && !errors.Is(lerr, ErrCacheMiss) {
			return nil, lerr // the local cache's problem is the one worth a warning
		}
		return nil, err
	}
	if t.local.Put(ctx, key, step) != nil {
		return step, nil
	}
	if local, err := t.local.Get(ctx, key); err == nil {
		return local, nil // its layer is a file here now, not a registry blob
	}
	return step, nil
}

// Put stores the step in both caches; the local store's error wins, the shared one's
// comes after it (a shared cache that stores in the background reports at Flush).
func (t tieredCache) Put(ctx context.Context, key v1.Hash, step *CachedStep) error {
	lerr := t.local.Put(ctx, key, step)
	serr := t.shared.Put(ctx, key, step)
	if serr != nil {
		serr = fmt.Errorf("shared cache: %w", serr)
	}
	return errors.Join(lerr, serr)
}

// Inputs reads the local cache's input index (a registry cache keeps none: its values'
// digests stay on this machine).
func (t tieredCache) Inputs(ctx context.Context, slot v1.Hash) ([]CacheInput, error) {
	if idx, ok := t.local.(InputIndex); ok {
		return idx.Inputs(ctx, slot)
	}
	return nil, fmt.Errorf("%s: %w", slot, ErrCacheMiss)
}

// PutInputs records in the local cache's input index, when it has one.
func (t tieredCache) PutInputs(ctx context.Context, slot v1.Hash, inputs []CacheInput) error {
	if idx, ok := t.local.(InputIndex); ok {
		return idx.PutInputs(ctx, slot, inputs)
	}
	return nil
}

// flushShared waits for the shared cache's background stores, turning a failure into
// a warning: a step that did not reach the shared cache is a later miss, never a
// failed build.
func (b *build) flushShared(ctx context.Context) {
	f, ok := b.ws.SharedCache.(CacheFlusher)
	if !ok || b.cache == nil {
		return
	}
	if err := f.Flush(ctx); err != nil {
		b.emit(Warning{Message: fmt.Sprintf("Storing steps in the shared cache: %v", err)})
	}
}

// cacheScopeKey is the context key of WithCacheScope.
type cacheScopeKey struct{}

// WithCacheScope returns ctx marked as one scope of cache stores: a Cache that stores
// in the background (CacheFlusher) counts the stores Put with it apart from the others,
// and its Flush with it waits for and reports those only. Build gives each build one,
// so that on a server a build waits for its own pushes and hears of its own failures.
func WithCacheScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, cacheScopeKey{}, new(byte))
}

// CacheScope returns ctx's scope (WithCacheScope), nil when it has none.
func CacheScope(ctx context.Context) any {
	return ctx.Value(cacheScopeKey{})
}
