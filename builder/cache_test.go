package builder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

// cacheWorld builds Dockerfiles over one context directory, which tests change between
// builds, with one local cache shared by the builds (each with a state dir of its own,
// as the server gives every build).
type cacheWorld struct {
	*world
	cache    *builder.LocalCache
	cacheDir string
	ctxDir   string
}

func newCacheWorld(t *testing.T, files map[string]string) *cacheWorld {
	t.Helper()
	w := newWorld(t)
	dir := t.TempDir()
	c, err := builder.NewLocalCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	cw := &cacheWorld{world: w, cache: c, cacheDir: dir, ctxDir: t.TempDir()}
	cw.write(t, files)
	return cw
}

// write sets context files; an empty value removes the file.
func (cw *cacheWorld) write(t *testing.T, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(cw.ctxDir, p)
		if data == "" {
			os.Remove(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// cacheRun is one build's outcome, summarised from its events.
type cacheRun struct {
	res     *builder.Result
	events  []builder.Event
	hits    []string          // texts of the steps taken from the cache
	misses  map[string]string // text -> reason
	running int               // RUN processes started
	extract int               // roots filled from layers
	warns   []string
}

func (cw *cacheWorld) build(t *testing.T, dockerfile string, edit func(*builder.Request)) *cacheRun {
	t.Helper()
	bctx, err := contexts.FromDir(cw.ctxDir)
	if err != nil {
		t.Fatal(err)
	}
	req := &builder.Request{Dockerfile: []byte(strings.ReplaceAll(dockerfile, "BUSYBOX", cw.busybox)), Context: bctx}
	if edit != nil {
		edit(req)
	}
	run := &cacheRun{misses: map[string]string{}}
	ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), Cache: cw.cache}
	run.res, err = builder.Build(context.Background(), req, builder.WithWorkspace(ws), builder.WithEvents(func(e builder.Event) {
		run.events = append(run.events, e)
		switch e := e.(type) {
		case builder.CacheHit:
			run.hits = append(run.hits, e.Text)
		case builder.CacheMiss:
			run.misses[e.Text] = e.Reason
		case builder.Running:
			run.running++
		case builder.Debug:
			if strings.HasPrefix(e.Message, "Extracting") {
				run.extract++
			}
		case builder.Warning:
			run.warns = append(run.warns, e.Message)
		}
	}))
	if err != nil {
		t.Fatalf("build failed: %v", err)
	}
	if err := validate.Image(outputImage(t, run.res.Image)); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	return run
}

const cachedDockerfile = `FROM BUSYBOX
ARG GREETING=hello
ENV WHO=world
WORKDIR /work
COPY a.txt dir ./
RUN echo "$GREETING $WHO" > greeting && cat a.txt > copy
LABEL version=1
USER app
RUN id -u > /home/app/uid
`

// A rebuild of an unchanged Dockerfile and context takes every step from the cache:
// nothing runs, nothing is extracted, and the image is the same image.
func TestCacheRebuildHitsEveryStep(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a.txt": "A", "dir/b.txt": "B"})
	first := cw.build(t, cachedDockerfile, nil)
	if len(first.hits) != 0 || len(first.misses) != 8 || first.running != 2 {
		t.Fatalf("first build: %d hits, %d misses, %d RUNs; want 0, 8, 2", len(first.hits), len(first.misses), first.running)
	}
	again := cw.build(t, cachedDockerfile, nil)
	if len(again.hits) != 8 || len(again.misses) != 0 {
		t.Errorf("rebuild: hits %q, misses %q; want every step a hit", again.hits, again.misses)
	}
	if again.running != 0 || again.extract != 0 {
		t.Errorf("rebuild ran %d RUNs and filled %d roots, want none", again.running, again.extract)
	}
	if again.res.ID != first.res.ID {
		t.Errorf("rebuild image %s, first build %s: want the same ID", again.res.ID, first.res.ID)
	}
	wantFiles(t, files(t, again.res.Image), map[string]string{
		"/work/greeting": "f 0644 0:0 hello world\n",
		"/work/copy":     "f 0644 0:0 A",
		"/work/b.txt":    "f 0644 0:0 B",
		"/home/app/uid":  "f 0644 1000:1000 1000\n",
	})
	// The server prints " ---> Using cache" between a step and its ID.
	for i, e := range again.events {
		if _, ok := e.(builder.CacheHit); ok {
			if _, ok := again.events[i+1].(builder.StepDone); !ok {
				t.Errorf("CacheHit followed by %T, want StepDone", again.events[i+1])
			}
		}
	}
}

// A changed COPY source misses that step, naming the file; the steps after it that
// depend on its layer miss too. Touching a file without changing it misses nothing.
func TestCacheCopySourceChanged(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a.txt": "A", "dir/b.txt": "B"})
	first := cw.build(t, cachedDockerfile, nil)

	touch := time.Unix(1_000_000_000, 0)
	if err := os.Chtimes(filepath.Join(cw.ctxDir, "dir/b.txt"), touch, touch); err != nil {
		t.Fatal(err)
	}
	touched := cw.build(t, cachedDockerfile, nil)
	if len(touched.misses) != 0 || touched.res.ID != first.res.ID {
		t.Errorf("after a touch: misses %q, ID changed %v; want all hits", touched.misses, touched.res.ID != first.res.ID)
	}

	cw.write(t, map[string]string{"dir/b.txt": "B2"})
	changed := cw.build(t, cachedDockerfile, nil)
	copyText := "COPY a.txt dir ./"
	if got := changed.misses[copyText]; got != "file dir/b.txt changed" {
		t.Errorf("COPY miss reason %q, want %q", got, "file dir/b.txt changed")
	}
	if len(changed.hits) != 3 {
		t.Errorf("hits %q, want the 3 steps before the COPY", changed.hits)
	}
	if r := changed.misses[`RUN echo "$GREETING $WHO" > greeting && cat a.txt > copy`]; !strings.Contains(r, "ran again") {
		t.Errorf("RUN after the changed COPY: reason %q, want it to name the step that ran again", r)
	}
	wantFiles(t, files(t, changed.res.Image), map[string]string{"/work/b.txt": "f 0644 0:0 B2"})
}

// Later steps hit again after a miss when the step that ran again left the image as it
// was: the next key chains from the image's content, not from the previous key.
func TestCacheHitsAgainAfterUnchangedStep(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dockerfile string
		repro      bool
	}{
		{"RUN without layer", "FROM BUSYBOX\nARG V\nRUN test -n \"$V\"\nCOPY a.txt /a\n", false},
		{"RUN with the same layer", "FROM BUSYBOX\nARG V\nRUN echo constant > /c\nCOPY a.txt /a\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cw := newCacheWorld(t, map[string]string{"a.txt": "A"})
			withV := func(v string) func(*builder.Request) {
				return func(r *builder.Request) {
					r.BuildArgs = map[string]*string{"V": &v}
					r.Reproducible = tc.repro
				}
			}
			cw.build(t, tc.dockerfile, withV("1"))
			again := cw.build(t, tc.dockerfile, withV("2"))
			runs := strings.Split(strings.TrimSpace(tc.dockerfile), "\n")[2:]
			if r := again.misses[runs[0]]; r != "build arg V changed" {
				t.Errorf("first RUN: reason %q, want the build arg named", r)
			}
			if len(again.hits) != 2 || again.hits[1] != runs[1] {
				t.Errorf("hits %q, want ARG and %q", again.hits, runs[1])
			}
			if again.running != 1 {
				t.Errorf("%d RUNs ran, want 1", again.running)
			}
			wantFiles(t, files(t, again.res.Image), map[string]string{"/a": "f 0644 0:0 A"})
		})
	}
}

// --no-cache runs every step but still stores them: the next build hits and gets the
// image the --no-cache build made.
func TestCacheNoCacheStores(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a.txt": "A", "dir/b.txt": "B"})
	cw.build(t, cachedDockerfile, nil)
	fresh := cw.build(t, cachedDockerfile, func(r *builder.Request) { r.NoCache = true })
	if len(fresh.hits) != 0 || fresh.running != 2 {
		t.Errorf("--no-cache: %d hits, %d RUNs; want 0 and 2", len(fresh.hits), fresh.running)
	}
	for text, reason := range fresh.misses {
		if !strings.Contains(reason, "--no-cache") {
			t.Errorf("%s: reason %q, want --no-cache", text, reason)
		}
	}
	after := cw.build(t, cachedDockerfile, nil)
	if len(after.misses) != 0 || after.res.ID != fresh.res.ID {
		t.Errorf("after --no-cache: misses %q, ID %s want %s", after.misses, after.res.ID, fresh.res.ID)
	}
}

// COPY --from a stage taken wholly from the cache still finds the stage's files when it
// must run: the stage's root is filled on demand.
func TestCacheCopyFromCachedStage(t *testing.T) {
	const df = `FROM BUSYBOX AS build
RUN echo built > /artifact
FROM BUSYBOX
COPY x.txt /x
COPY --from=build /artifact /artifact
RUN cat /artifact /x > /both
`
	cw := newCacheWorld(t, map[string]string{"x.txt": "x1\n"})
	first := cw.build(t, df, nil)
	again := cw.build(t, df, nil)
	if again.res.ID != first.res.ID || again.running != 0 || again.extract != 0 {
		t.Errorf("rebuild: ID %s (first %s), %d RUNs, %d extractions", again.res.ID, first.res.ID, again.running, again.extract)
	}
	cw.write(t, map[string]string{"x.txt": "x2\n"})
	changed := cw.build(t, df, nil)
	if len(changed.hits) != 1 || changed.hits[0] != "RUN echo built > /artifact" {
		t.Errorf("hits %q, want only the first stage's RUN", changed.hits)
	}
	wantFiles(t, files(t, changed.res.Image), map[string]string{
		"/artifact": "f 0644 0:0 built\n",
		"/both":     "f 0644 0:0 built\nx2\n",
	})
}

// A corrupt cache is a miss with a warning, never a failed build.
func TestCacheCorruptEntries(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a.txt": "A", "dir/b.txt": "B"})
	first := cw.build(t, cachedDockerfile, nil)
	for _, sub := range []string{"steps", "blobs"} {
		entries, err := os.ReadDir(filepath.Join(cw.cacheDir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range entries {
			if i%2 == 0 { // half the entries unreadable, half the blobs truncated
				os.WriteFile(filepath.Join(cw.cacheDir, sub, e.Name()), []byte("{not json"), 0o600)
			}
		}
	}
	again := cw.build(t, cachedDockerfile, nil)
	if len(again.warns) == 0 || len(again.misses) == 0 {
		t.Errorf("corrupt cache: %d warnings, %d misses; want some of each", len(again.warns), len(again.misses))
	}
	wantFiles(t, files(t, again.res.Image), map[string]string{"/work/copy": "f 0644 0:0 A", "/home/app/uid": "f 0644 1000:1000 1000\n"})
	if d := cmp.Diff(config(t, first.res.Image), config(t, again.res.Image)); d != "" {
		t.Errorf("config differs from the first build's (-first +again):\n%s", d)
	}
}
