package registrycache_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/builder/registrycache"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/test/testworld"
)

func TestMain(m *testing.M) {
	// RUN goes through the chroot runner, which re-executes the test binary.
	isolation.Init()
	os.Exit(m.Run())
}

const buildDockerfile = `FROM BUSYBOX
ENV A=1
WORKDIR /w
COPY a.txt .
RUN cat a.txt > b
LABEL x=y
RUN echo "$A" > c
`

// cachedBuild is one build's cache events.
type cachedBuild struct {
	res     *builder.Result
	hits    []string
	misses  map[string]string
	running int
}

// buildWith builds buildDockerfile over ctxDir with cache c, in a state dir of its own
// as every kiln build process has, and waits for the cache's pushes.
func buildWith(t *testing.T, busybox, ctxDir string, c builder.Cache, flush func(context.Context) error) *cachedBuild {
	t.Helper()
	bctx, err := contexts.FromDir(ctxDir)
	if err != nil {
		t.Fatal(err)
	}
	out := &cachedBuild{misses: map[string]string{}}
	req := &builder.Request{Dockerfile: []byte(strings.ReplaceAll(buildDockerfile, "BUSYBOX", busybox)), Context: bctx}
	ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), Cache: c}
	out.res, err = builder.Build(context.Background(), req, builder.WithWorkspace(ws), builder.WithEvents(func(e builder.Event) {
		switch e := e.(type) {
		case builder.CacheHit:
			out.hits = append(out.hits, e.Text)
		case builder.CacheMiss:
			out.misses[e.Text] = e.Reason
		case builder.Running:
			out.running++
		case builder.Warning:
			t.Errorf("warning: %s", e.Message)
		}
	}))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if err := flush(context.Background()); err != nil {
		t.Fatalf("cache pushes: %v", err)
	}
	// The build's layers are plain tars; validate what an output would send.
	comp, err := output.NewCompressor(t.TempDir(), output.Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	img, err := comp.CompressImage(context.Background(), out.res.Image)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	return out
}

// A rebuild in a new process (a new Cache over the same repository) takes every step
// from the registry and makes the same image. With COPY left out of the cache
// (kaniko's default), the COPY runs again every time; the steps after it miss once, then
// hit.
func TestBuildFromRegistryCache(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot builds need root")
	}
	t.Parallel()
	host, busybox := testworld.BusyboxRegistry(t, nil,
		testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n"})
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "a.txt"), []byte("from the context\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(host + "/app/cache")
	if err != nil {
		t.Fatal(err)
	}
	open := func() *registrycache.Cache {
		comp, err := output.NewCompressor(t.TempDir(), output.Gzip, 0)
		if err != nil {
			t.Fatal(err)
		}
		return registrycache.New(repo, registrycache.WithSpoolDir(t.TempDir()), registrycache.WithCompression(comp))
	}

	c := open()
	first := buildWith(t, busybox, ctxDir, c, c.Flush)
	if len(first.hits) != 0 || len(first.misses) != 6 || first.running != 2 {
		t.Fatalf("first build: hits %q, %d misses, %d RUNs; want 0, 6, 2", first.hits, len(first.misses), first.running)
	}
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 6 || slices.ContainsFunc(tags, func(s string) bool { return len(s) != 64 }) {
		t.Errorf("cache tags %q: want one per step, each a key in hex (kaniko's scheme)", tags)
	}

	c = open()
	again := buildWith(t, busybox, ctxDir, c, c.Flush)
	if len(again.hits) != 6 || len(again.misses) != 0 || again.running != 0 {
		t.Errorf("rebuild: hits %q, misses %q, %d RUNs; want every step a hit", again.hits, again.misses, again.running)
	}
	if again.res.ID != first.res.ID {
		t.Errorf("rebuild image %s, first %s: want the same image", again.res.ID, first.res.ID)
	}

	c = open()
	noCopy := builder.FilterSteps(c, func(instruction string) bool { return instruction != "COPY" })
	filtered := buildWith(t, busybox, ctxDir, noCopy, c.Flush)
	if got := filtered.misses["COPY a.txt ."]; got != "COPY steps are not cached" {
		t.Errorf("COPY miss reason %q, want it not cached", got)
	}
	// The COPY made its layer again, with the directory /w modified now: the image
	// is new from there on, and the RUN after it says why it ran.
	if got := filtered.misses["RUN cat a.txt > b"]; !strings.Contains(got, "step 4 (COPY a.txt .) is not cached and ran again") {
		t.Errorf("RUN after the uncached COPY: reason %q, want it to name the COPY", got)
	}
	if !slices.Equal(filtered.hits, []string{"ENV A=1", "WORKDIR /w"}) {
		t.Errorf("without COPY in the cache: hits %q, want the steps before it", filtered.hits)
	}

	// From the uncached COPY on, keys chain from step keys, as kaniko's do: the next
	// build with the same COPY sources runs the COPY and takes every later step from
	// the cache.
	c = open()
	noCopy = builder.FilterSteps(c, func(instruction string) bool { return instruction != "COPY" })
	chained := buildWith(t, busybox, ctxDir, noCopy, c.Flush)
	if len(chained.misses) != 1 || chained.misses["COPY a.txt ."] == "" || chained.running != 0 {
		t.Errorf("second build without COPY in the cache: misses %q, %d RUNs; want only the COPY to run", chained.misses, chained.running)
	}

	// The entries hold gzip layers: a build asking for zstd cannot take a step with a
	// layer from them (its image would get a gzip layer), only those without one.
	zstd, err := output.NewCompressor(t.TempDir(), output.Zstd, 0)
	if err != nil {
		t.Fatal(err)
	}
	zc := registrycache.New(repo, registrycache.WithSpoolDir(t.TempDir()), registrycache.WithCompression(zstd), registrycache.WithReadOnly())
	z := buildWith(t, busybox, ctxDir, zc, zc.Flush)
	if !slices.Equal(z.hits, []string{"ENV A=1"}) || z.running != 2 {
		t.Errorf("zstd build over gzip entries: hits %q, %d RUNs; want the step without a layer to hit, both RUNs to run", z.hits, z.running)
	}
}
