package builder_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

// rootfsRun is one build with the extracted-base cache, summarised.
type rootfsRun struct {
	res      *builder.Result
	mounts   int // stage roots mounted on a cached base
	extracts int // base trees or roots filled by extraction
}

// rootfsBuild builds dockerfile (BUSYBOX stands for the world's base) reproducibly,
// with the base cache in cacheDir and a fresh state directory in stateParent.
func rootfsBuild(t *testing.T, w *world, cacheDir, stateParent, dockerfile string) (*rootfsRun, error) {
	t.Helper()
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	state, err := os.MkdirTemp(stateParent, "state-")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	run := &rootfsRun{}
	run.res, err = builder.Build(context.Background(), &builder.Request{
		Dockerfile:   []byte(strings.ReplaceAll(dockerfile, "BUSYBOX", w.busybox)),
		Context:      bctx,
		Reproducible: true,
	},
		builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: state, BaseCache: cacheDir}),
		builder.WithEvents(func(e builder.Event) {
			d, ok := e.(builder.Debug)
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.HasPrefix(d.Message, "Mounting"):
				run.mounts++
			case strings.HasPrefix(d.Message, "Extracting"):
				run.extracts++
			}
		}),
	)
	if err != nil {
		return nil, err
	}
	if err := validate.Image(outputImage(t, run.res.Image)); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	if m := mountsUnder(t, state); len(m) > 0 {
		t.Errorf("mounts left under the state directory: %v", m)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("state directory: %v", err)
	}
	return run, nil
}

// needOverlay skips the test where overlay mounts cannot be made (not root, no
// overlayfs, a temporary directory on an overlay).
func needOverlay(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("overlay mounts need root")
	}
	dir := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	data := "lowerdir=" + dir + "/l,upperdir=" + dir + "/u,workdir=" + dir + "/w"
	if err := unix.Mount("overlay", dir+"/m", "overlay", 0, data); err != nil {
		t.Skipf("overlay mounts are not available here: %v", err)
	}
	if err := unix.Unmount(dir+"/m", 0); err != nil {
		t.Fatal(err)
	}
}

// mountsUnder lists the mount points below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// baseTrees lists the cached trees and any other entries (leftovers) of a cache.
func baseTrees(t *testing.T, cacheDir string) (trees, others []string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cacheDir, "rootfs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch {
		case strings.HasSuffix(e.Name(), ".lock"):
		case e.IsDir() && !strings.HasPrefix(e.Name(), "."):
			trees = append(trees, filepath.Join(cacheDir, "rootfs", e.Name()))
		default:
			others = append(others, e.Name())
		}
	}
	return trees, others
}

const rootfsDockerfile = `FROM BUSYBOX AS base
RUN echo hi > /hello && rm /var/lib/base.txt /etc/group && rm -rf /home && mkdir -p /home/new
FROM base
RUN cat /hello > /again
`

// TestRootfsCacheSecondBuildMounts: the first build extracts the base into the cache,
// the second mounts it, and both give the image that extraction into the root (the
// fallback, forced by a state directory overlay options cannot name) gives.
func TestRootfsCacheSecondBuildMounts(t *testing.T) {
	t.Parallel()
	needOverlay(t)
	w := newWorld(t)
	cacheDir, states := t.TempDir(), t.TempDir()

	first, err := rootfsBuild(t, w, cacheDir, states, rootfsDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	second, err := rootfsBuild(t, w, cacheDir, states, rootfsDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	colon := filepath.Join(t.TempDir(), "no:overlay")
	if err := os.Mkdir(colon, 0o700); err != nil {
		t.Fatal(err)
	}
	extracted, err := rootfsBuild(t, w, colon, colon, rootfsDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		run            *rootfsRun
		mounts, extrac int
	}{
		// Both stages mount the one tree, which the first build extracts once; the
		// second stage extracts the first one's RUN layer over it.
		{"cold cache", first, 2, 2},
		{"warm cache", second, 2, 1},
		{"no overlay", extracted, 0, 2},
	}
	for _, tc := range tests {
		if tc.run.mounts != tc.mounts || tc.run.extracts != tc.extrac {
			t.Errorf("%s: %d mounts, %d extractions; want %d, %d", tc.name, tc.run.mounts, tc.run.extracts, tc.mounts, tc.extrac)
		}
		if tc.run.res.ID != extracted.res.ID {
			t.Errorf("%s: image %s, extraction into the root gives %s", tc.name, tc.run.res.ID, extracted.res.ID)
		}
	}
	got := files(t, second.res.Image)
	wantFiles(t, got, map[string]string{
		"/hello":            "f 0644 0:0 hi\n",
		"/again":            "f 0644 0:0 hi\n",
		"/var/lib/base.txt": "",
		"/etc/group":        "",
		"/etc/passwd":       "f 0644 0:0 root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"/home/new":         "d 0755 0:0",
		"/home/app":         "",
		"/bin/busybox":      "f 0755 0:0 <large>",
		"/var/lib":          "d 0755 0:0",
	})
}

// TestRootfsCacheDeleteKeepsTree: a RUN deleting base files gives whiteouts in its
// layer, and only there: the cached tree keeps every file.
func TestRootfsCacheDeleteKeepsTree(t *testing.T) {
	t.Parallel()
	needOverlay(t)
	w := newWorld(t)
	cacheDir := t.TempDir()
	run, err := rootfsBuild(t, w, cacheDir, t.TempDir(), "FROM BUSYBOX\nRUN rm -rf /home /etc/passwd /var/lib/base.txt\n")
	if err != nil {
		t.Fatal(err)
	}
	if run.mounts != 1 {
		t.Fatalf("%d mounts, want 1", run.mounts)
	}
	layers, err := run.res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/", "etc/.wh.passwd", ".wh.home", "var/", "var/lib/", "var/lib/.wh.base.txt"}
	if diff := cmp.Diff(want, tarNames(t, layers[len(layers)-1])); diff != "" {
		t.Errorf("RUN layer (-want +got):\n%s", diff)
	}
	trees, others := baseTrees(t, cacheDir)
	if len(trees) != 1 || len(others) != 0 {
		t.Fatalf("cache holds trees %v and %v, want one tree", trees, others)
	}
	for _, p := range []string{"etc/passwd", "home/app", "var/lib/base.txt", "bin/busybox", "bin/sh"} {
		if _, err := os.Lstat(filepath.Join(trees[0], p)); err != nil {
			t.Errorf("cached tree lost %s: %v", p, err)
		}
	}
}

// tarNames lists a layer's entry names, directories ending in "/".
func tarNames(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimPrefix(h.Name, "./"))
	}
}

// TestRootfsCacheConcurrentBuilds: builds starting together on one base extract it
// once and give one image.
func TestRootfsCacheConcurrentBuilds(t *testing.T) {
	t.Parallel()
	needOverlay(t)
	w := newWorld(t)
	cacheDir, states := t.TempDir(), t.TempDir()
	const n = 4
	runs := make([]*rootfsRun, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			runs[i], errs[i] = rootfsBuild(t, w, cacheDir, states, "FROM BUSYBOX\nRUN echo concurrent > /c && rm /var/lib/base.txt\n")
		})
	}
	wg.Wait()
	extracts := 0
	for i, r := range runs {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		extracts += r.extracts
		if r.mounts != 1 {
			t.Errorf("build %d: %d mounts, want 1", i, r.mounts)
		}
		if r.res.ID != runs[0].res.ID {
			t.Errorf("build %d: image %s, build 0 gave %s", i, r.res.ID, runs[0].res.ID)
		}
	}
	if extracts != 1 {
		t.Errorf("the base was extracted %d times, want once", extracts)
	}
	if trees, others := baseTrees(t, cacheDir); len(trees) != 1 || len(others) != 0 {
		t.Errorf("cache holds trees %v and %v, want one tree", trees, others)
	}
}

// TestRootfsCacheLeftoverIgnored: a tree half-built by a killed build is neither used
// nor left behind; the next build extracts the base again.
func TestRootfsCacheLeftoverIgnored(t *testing.T) {
	t.Parallel()
	needOverlay(t)
	w := newWorld(t)
	cacheDir, states := t.TempDir(), t.TempDir()
	const df = "FROM BUSYBOX\nRUN cat /var/lib/base.txt > /copy\n"
	first, err := rootfsBuild(t, w, cacheDir, states, df)
	if err != nil {
		t.Fatal(err)
	}
	trees, _ := baseTrees(t, cacheDir)
	if len(trees) != 1 {
		t.Fatalf("trees %v, want one", trees)
	}
	// What a build killed while extracting leaves: a partial temporary tree.
	leftover := filepath.Join(filepath.Dir(trees[0]), ".tmp-"+filepath.Base(trees[0])+"-123")
	if err := os.Rename(trees[0], leftover); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(leftover, "var")); err != nil {
		t.Fatal(err)
	}
	again, err := rootfsBuild(t, w, cacheDir, states, df)
	if err != nil {
		t.Fatal(err)
	}
	if again.extracts != 1 || again.mounts != 1 {
		t.Errorf("%d extractions, %d mounts; want the base extracted again and mounted", again.extracts, again.mounts)
	}
	if again.res.ID != first.res.ID {
		t.Errorf("image %s, want %s", again.res.ID, first.res.ID)
	}
	if got, others := baseTrees(t, cacheDir); len(got) != 1 || len(others) != 0 {
		t.Errorf("cache holds trees %v and %v, want one tree", got, others)
	}
}
