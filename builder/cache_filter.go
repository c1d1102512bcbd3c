package builder

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// StepFilter is an optional capability of a Cache: it keeps the steps of some
// instructions only (kaniko's --cache-run-layers and --cache-copy-layers). A step of an
// instruction it does not keep is neither looked up nor stored: it runs, as a step that
// cannot be cached does, and its cache-miss event says why.
type StepFilter interface {
	// Caches reports whether steps of instruction, named in upper case as in a
	// Dockerfile ("RUN", "COPY"), are kept.
	Caches(instruction string) bool
}

// FilterSteps returns a Cache that passes to c only the steps of the instructions keep
// accepts (upper case names). The result keeps c's InputIndex when it has one.
func FilterSteps(c Cache, keep func(instruction string) bool) Cache {
	return &filteredCache{Cache: c, keep: keep}
}

// filteredCache is FilterSteps' Cache.
type filteredCache struct {
	Cache
	keep func(string) bool
}

var (
	_ StepFilter = (*filteredCache)(nil)
	_ InputIndex = (*filteredCache)(nil)
)

// Caches asks the filter, then the wrapped cache when it filters too.
func (f *filteredCache) Caches(instruction string) bool {
	if !f.keep(instruction) {
		return false
	}
	if inner, ok := f.Cache.(StepFilter); ok {
		return inner.Caches(instruction)
	}
	return true
}

// Inputs reads the wrapped cache's index; a cache without one has no entries.
func (f *filteredCache) Inputs(ctx context.Context, slot v1.Hash) ([]CacheInput, error) {
	if idx, ok := f.Cache.(InputIndex); ok {
		return idx.Inputs(ctx, slot)
	}
	return nil, fmt.Errorf("%s: %w", slot, ErrCacheMiss)
}

// PutInputs records in the wrapped cache's index, when it has one.
func (f *filteredCache) PutInputs(ctx context.Context, slot v1.Hash, inputs []CacheInput) error {
	if idx, ok := f.Cache.(InputIndex); ok {
		return idx.PutInputs(ctx, slot, inputs)
	}
	return nil
}
