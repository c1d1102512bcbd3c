package buildkitapi

import (
	"context"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"
)

// TestRegistryCache: --cache-to type=registry stores the steps in a repository, and a
// build with only --cache-from reads them back (every step CACHED); a cache type kiln
// does not have is reported, not silently dropped.
func TestRegistryCache(t *testing.T) {
	ts := newTestServer(t)
	registry, _, _ := strings.Cut(ts.busybox, "/")
	cacheRef := registry + "/kiln-cache/app:buildcache"
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nRUN echo one > /one\nRUN echo two > /two\n"})
	solve := func(exports, imports []bkclient.CacheOptionsEntry) []*bkclient.SolveStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := ts.client(t, ctx)
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		ch, statuses := collectStatus()
		_, err = c.Solve(ctx, nil, bkclient.SolveOpt{
			Frontend:      "dockerfile.v0",
			FrontendAttrs: map[string]string{},
			LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
			CacheExports:  exports,
			CacheImports:  imports,
		}, ch)
		if err != nil {
			t.Fatal(err)
		}
		return statuses()
	}
	cached := func(statuses []*bkclient.SolveStatus) int {
		n := 0
		for _, s := range statuses {
			for _, v := range s.Vertexes {
				if v.Cached && v.Completed != nil && strings.Contains(v.Name, "RUN") {
					n++
				}
			}
		}
		return n
	}
	reg := []bkclient.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": cacheRef}}}
	if n := cached(solve(reg, nil)); n != 0 {
		t.Fatalf("first build: %d cached RUN steps", n)
	}
	if n := cached(solve(nil, reg)); n != 2 {
		t.Errorf("build with --cache-from the repository: %d cached RUN steps, want 2", n)
	}
	statuses := solve([]bkclient.CacheOptionsEntry{{Type: "s3", Attrs: map[string]string{"bucket": "b", "region": "r"}}}, nil)
	var warned bool
	for _, s := range statuses {
		for _, w := range s.Warnings {
			warned = warned || strings.Contains(string(w.Short), "cache export type=s3 is not supported by kiln")
		}
	}
	if !warned {
		t.Error("an s3 cache export was dropped without a warning")
	}
}
