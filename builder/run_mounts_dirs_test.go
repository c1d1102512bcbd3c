package builder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

// dirMountBuild builds df (BUSYBOX replaced) in chroot isolation over a context of
// ctxFiles, with mountCache as the workspace's cache mount directory.
func dirMountBuild(t *testing.T, w *world, df string, ctxFiles map[string]string, mountCache string) (*builder.Result, error) {
	t.Helper()
	dir := t.TempDir()
	for p, data := range ctxFiles {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bctx, err := contexts.FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return builder.Build(context.Background(),
		&builder.Request{Dockerfile: []byte(strings.ReplaceAll(df, "BUSYBOX", w.busybox)), Context: bctx},
		builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), MountCacheDir: mountCache}))
}

// TestRunMountCache runs pairs of chroot builds sharing a cache mount directory: the
// second build's RUN sees what the first wrote under the same id (the target by
// default), another id sees an empty cache with the mount's mode and owner, a
// read-only cache refuses writes, and no layer holds the target or its content.
func TestRunMountCache(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name          string
		first, second string // RUN lines
		want          map[string]string
		paths         []string // no trace in any layer
		wantErr       string
	}{
		{name: "target is the id",
			first:  "RUN --mount=type=cache,target=/root/.cache echo one >/root/.cache/f",
			second: "RUN --mount=type=cache,target=/root/.cache cat /root/.cache/f >/out",
			want:   map[string]string{"/out": "f 0644 0:0 one\n", "/root/.cache": ""},
			paths:  []string{"/root/.cache"}},
		{name: "relative target under WORKDIR",
			first:  "WORKDIR /w\nRUN --mount=type=cache,target=c echo one >c/f",
			second: "RUN --mount=type=cache,target=/w/c cat /w/c/f >/out",
			want:   map[string]string{"/out": "f 0644 0:0 one\n", "/w/c": ""},
			paths:  []string{"/w/c"}},
		{name: "same id at another target",
			first:  "RUN --mount=type=cache,id=shared,target=/a echo one >/a/f",
			second: "RUN --mount=type=cache,id=shared,target=/var/lib/b cat /var/lib/b/f >/out",
			want:   map[string]string{"/out": "f 0644 0:0 one\n"},
			paths:  []string{"/a", "/var/lib/b"}},
		{name: "another id is empty, with mode and owner",
			first:  "RUN --mount=type=cache,id=x,target=/a echo one >/a/f",
			second: "RUN --mount=type=cache,id=y,target=/a,mode=0700,uid=1000,gid=2000 sh -c 'test ! -e /a/f && stat -c \"%a %u:%g\" /a >/out'",
			want:   map[string]string{"/out": "f 0644 0:0 700 1000:2000\n"},
			paths:  []string{"/a"}},
		{name: "the same id with a mode is another cache, as in BuildKit",
			first:  "RUN --mount=type=cache,id=x,target=/a,mode=0700 echo one >/a/f",
			second: "RUN --mount=type=cache,id=x,target=/a sh -c 'test ! -e /a/f && echo empty >/out'",
			want:   map[string]string{"/out": "f 0644 0:0 empty\n"},
			paths:  []string{"/a"}},
		{name: "default mode and owner",
			first:  "RUN true",
			second: "RUN --mount=type=cache,target=/a stat -c '%a %u:%g' /a >/out",
			want:   map[string]string{"/out": "f 0644 0:0 755 0:0\n"},
			paths:  []string{"/a"}},
		{name: "over an image directory: its content is hidden, and kept",
			first:  "RUN --mount=type=cache,target=/var/lib echo one >/var/lib/f",
			second: "RUN --mount=type=cache,target=/var/lib sh -c 'test ! -e /var/lib/base.txt && cat /var/lib/f >/out'",
			want:   map[string]string{"/out": "f 0644 0:0 one\n", "/var/lib/base.txt": "f 0644 0:0 from the base\n", "/var/lib/f": ""}},
		{name: "from a stage: seeded once, then kept",
			first: "FROM BUSYBOX AS seed\nRUN mkdir /s && echo seeded >/s/f\nFROM BUSYBOX\n" +
				"RUN --mount=type=cache,target=/c,from=seed,source=/s sh -c 'cat /c/f >/out && echo more >/c/g'",
			second: "FROM BUSYBOX AS seed\nRUN mkdir /s && echo seeded >/s/f\nFROM BUSYBOX\n" +
				"RUN --mount=type=cache,target=/c,from=seed,source=/s sh -c 'cat /c/f /c/g >/out'",
			want:  map[string]string{"/out": "f 0644 0:0 seeded\nmore\n", "/s": ""},
			paths: []string{"/c"}},
		{name: "from another seed: another cache",
			first: "FROM BUSYBOX AS seed\nRUN mkdir /s && echo one >/s/f\nFROM BUSYBOX\n" +
				"RUN --mount=type=cache,target=/c,from=seed,source=/s sh -c 'echo more >/c/g'",
			second: "FROM BUSYBOX AS seed\nRUN mkdir /s && echo two >/s/f\nFROM BUSYBOX\n" +
				"RUN --mount=type=cache,target=/c,from=seed,source=/s sh -c 'test ! -e /c/g && cat /c/f >/out'",
			want:  map[string]string{"/out": "f 0644 0:0 two\n"},
			paths: []string{"/c"}},
		{name: "read-only",
			first:  "RUN --mount=type=cache,target=/a echo one >/a/f",
			second: "RUN --mount=type=cache,target=/a,ro sh -c 'cat /a/f >/out && ! touch /a/g 2>/dev/null'",
			want:   map[string]string{"/out": "f 0644 0:0 one\n"},
			paths:  []string{"/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mc := t.TempDir()
			withBase := func(df string) string {
				if strings.HasPrefix(df, "FROM") {
					return df + "\n"
				}
				return "FROM BUSYBOX\n" + df + "\n"
			}
			if _, err := dirMountBuild(t, w, withBase(tt.first), nil, mc); err != nil {
				t.Fatalf("first build: %v", err)
			}
			res, err := dirMountBuild(t, w, withBase(tt.second), nil, mc)
			if err != nil {
				t.Fatalf("second build: %v", err)
			}
			wantFiles(t, files(t, res.Image), tt.want)
			requireNoTrace(t, res.Image, tt.paths...)
		})
	}
}

// TestRunMountCacheLocked runs two builds at once whose RUNs use one cache with
// sharing=locked: each marks the cache busy for a second, and neither may find the
// other's mark.
func TestRunMountCacheLocked(t *testing.T) {
	w := newWorld(t)
	mc := t.TempDir()
	df := "FROM BUSYBOX\nRUN --mount=type=cache,target=/c,sharing=locked sh -c " +
		"'if test -e /c/busy; then echo overlap >>/c/bad; fi; touch /c/busy; sleep 1; rm /c/busy'\n"
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = dirMountBuild(t, w, df, map[string]string{"n": string(rune('a' + i))}, mc)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := dirMountBuild(t, w, "FROM BUSYBOX\nRUN --mount=type=cache,target=/c sh -c 'echo \"[$(ls /c)]\" >/out'\n", nil, mc)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles(t, files(t, res.Image), map[string]string{"/out": "f 0644 0:0 []\n"})
}

// TestRunMountBind runs chroot builds with RUN --mount=type=bind: the context (whole
// or one file or directory), a stage's and an image's files are readable at the target,
// read-only by default; with rw, writes are discarded after the RUN; .dockerignore'd
// files are not there; nothing of the target reaches a layer.
func TestRunMountBind(t *testing.T) {
	w := newWorld(t)
	ctx := map[string]string{"a.txt": "from the context\n", "sub/b.txt": "b\n", "secret.key": "ignored\n", ".dockerignore": "*.key\n"}
	tests := []struct {
		name    string
		df      string
		want    map[string]string
		paths   []string
		wantErr string
	}{
		{name: "the context by default",
			df:    "RUN --mount=type=bind,target=/src sh -c 'cat /src/a.txt /src/sub/b.txt >/out && test ! -e /src/secret.key'",
			want:  map[string]string{"/out": "f 0644 0:0 from the context\nb\n"},
			paths: []string{"/src"}},
		{name: "one file of the context",
			df:    "RUN --mount=type=bind,source=a.txt,target=/etc/a.conf cat /etc/a.conf >/out",
			want:  map[string]string{"/out": "f 0644 0:0 from the context\n", "/etc/a.conf": ""},
			paths: []string{"/etc/a.conf"}},
		{name: "a directory, relative target",
			df:   "WORKDIR /w\nRUN --mount=type=bind,source=sub,target=s cat s/b.txt >/out",
			want: map[string]string{"/out": "f 0644 0:0 b\n", "/w": "d 0755 0:0", "/w/s": ""}},
		{name: "read-only by default",
			df:   "RUN --mount=type=bind,target=/src sh -c '! touch /src/new 2>/dev/null && echo ro >/out'",
			want: map[string]string{"/out": "f 0644 0:0 ro\n"}},
		{name: "rw: writes discarded",
			df: "RUN --mount=type=bind,target=/src,rw sh -c 'echo x >/src/new && echo y >>/src/a.txt && cat /src/new >/out'\n" +
				"RUN --mount=type=bind,target=/src sh -c 'test ! -e /src/new && cat /src/a.txt >/out2'",
			want:  map[string]string{"/out": "f 0644 0:0 x\n", "/out2": "f 0644 0:0 from the context\n"},
			paths: []string{"/src"}},
		{name: "from a stage",
			df:    "FROM BUSYBOX AS st\nRUN echo staged >/st.txt\nFROM BUSYBOX\nRUN --mount=type=bind,from=st,source=/st.txt,target=/m cat /m >/out",
			want:  map[string]string{"/out": "f 0644 0:0 staged\n", "/st.txt": ""},
			paths: []string{"/m"}},
		{name: "from an image",
			df:    "RUN --mount=type=bind,from=BUSYBOX,source=/var/lib,target=/m cat /m/base.txt >/out",
			want:  map[string]string{"/out": "f 0644 0:0 from the base\n"},
			paths: []string{"/m"}},
		{name: "a missing source",
			df:      "RUN --mount=type=bind,source=nope,target=/m true",
			wantErr: "Dockerfile:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			df := tt.df
			if !strings.HasPrefix(df, "FROM") {
				df = "FROM BUSYBOX\n" + df
			}
			res, err := dirMountBuild(t, w, df+"\n", ctx, t.TempDir())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			wantFiles(t, files(t, res.Image), tt.want)
			requireNoTrace(t, res.Image, tt.paths...)
		})
	}
}

// TestRunMountTmpfs runs a RUN with an empty, writable tmpfs at its target, bounded by
// size; nothing written there reaches the image.
func TestRunMountTmpfs(t *testing.T) {
	w := newWorld(t)
	df := "FROM BUSYBOX\nRUN --mount=type=tmpfs,target=/var/lib,size=1m sh -c " +
		"'test -z \"$(ls -A /var/lib)\" && echo x >/var/lib/f && ! dd if=/dev/zero of=/var/lib/big bs=1024 count=2048 2>/dev/null && echo ok >/out'\n" +
		"RUN --mount=type=tmpfs,target=/t touch /t/f\n"
	res, err := dirMountBuild(t, w, df, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wantFiles(t, files(t, res.Image), map[string]string{
		"/out": "f 0644 0:0 ok\n", "/var/lib/base.txt": "f 0644 0:0 from the base\n", "/var/lib/f": "", "/var/lib/big": "", "/t": ""})
	requireNoTrace(t, res.Image, "/t")
}

// TestRunMountBindCacheKey checks the step cache of a RUN with a bind mount of the
// context: it runs again when a bound file's content changes, not when another
// context file does.
func TestRunMountBindCacheKey(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"sub/a": "one", "other": "x"})
	df := "FROM BUSYBOX\nRUN --mount=type=bind,source=sub,target=/s cat /s/a >/out\n"
	if first := cw.build(t, df, nil); first.running != 1 {
		t.Fatalf("first build ran %d RUNs, want 1", first.running)
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantRun bool
	}{
		{name: "another file changed", files: map[string]string{"other": "y"}},
		{name: "a bound file changed", files: map[string]string{"sub/a": "two"}, wantRun: true},
		{name: "a file added to the bound directory", files: map[string]string{"sub/c": "c"}, wantRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cw.write(t, tc.files)
			run := cw.build(t, df, nil)
			if ran := run.running > 0; ran != tc.wantRun {
				t.Errorf("RUN ran: %t, want %t (hits %q, misses %q)", ran, tc.wantRun, run.hits, run.misses)
			}
		})
	}
}

// TestRunMountCacheBound builds with a cache mount bound to one byte: the build's
// cache is removed after it, and the next build's RUN finds the cache empty.
func TestRunMountCacheBound(t *testing.T) {
	w := newWorld(t)
	mc := t.TempDir()
	ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), MountCacheDir: mc, MountCacheMaxBytes: 1}
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM " + w.busybox + "\nRUN --mount=type=cache,target=/c sh -c 'test ! -e /c/f && echo one >/c/f'\n"
	for i := range 2 {
		if _, err := builder.Build(context.Background(), &builder.Request{Dockerfile: []byte(df), Context: bctx}, builder.WithWorkspace(ws)); err != nil {
			t.Fatalf("build %d: %v (the cache outlived the bound)", i+1, err)
		}
		recs, err := builder.MountCacheUsage(mc)
		if err != nil || len(recs) != 0 {
			t.Errorf("after build %d the store holds %+v (%v), want nothing", i+1, recs, err)
		}
	}
}
