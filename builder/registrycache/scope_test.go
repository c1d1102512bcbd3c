package registrycache_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/registrycache"
)

// TestFlushScopes: on a server two builds share one cache; each build's Flush (its
// builder.WithCacheScope context) waits for and reports its own pushes only, so one
// build's failed push is never told to the other, and an unscoped Flush takes the rest.
func TestFlushScopes(t *testing.T) {
	t.Parallel()
	bad := key("bad")
	repo := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/"+bad.Hex) {
				http.Error(w, "disk trouble", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := registrycache.New(repo, registrycache.WithUploads(2, 4))
	ctx := context.Background()
	a, b := builder.WithCacheScope(ctx), builder.WithCacheScope(ctx)
	if builder.CacheScope(a) == builder.CacheScope(b) || builder.CacheScope(ctx) != nil {
		t.Fatal("scopes are not distinct")
	}
	for _, p := range []struct {
		ctx context.Context
		key string
	}{{a, "good 1"}, {b, "bad"}, {a, "good 2"}, {ctx, "unscoped"}} {
		if err := c.Put(p.ctx, key(p.key), runStep(t, randomLayer(t))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(a); err != nil {
		t.Errorf("build a's Flush = %v, want nil: the failed push is build b's", err)
	}
	for _, k := range []string{"good 1", "good 2"} {
		if _, err := registrycache.New(repo).Get(ctx, key(k)); err != nil {
			t.Errorf("after build a's Flush, %q is not in the registry: %v", k, err)
		}
	}
	if err := c.Flush(b); err == nil || !strings.Contains(err.Error(), "1 of 1 cache pushes") {
		t.Errorf("build b's Flush = %v, want its one failed push", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Errorf("unscoped Flush = %v, want nil (the unscoped push succeeded)", err)
	}
	if _, err := registrycache.New(repo).Get(ctx, key("unscoped")); err != nil {
		t.Errorf("the unscoped store is not in the registry: %v", err)
	}
}
