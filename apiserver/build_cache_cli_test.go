package apiserver

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// dockerCLI returns a function running the real docker CLI (legacy builder) against
// host in dir (none: the test's own), stdin given: its stdout, stderr and exit code.
func dockerCLI(t *testing.T, host, dir string) func(stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI on PATH")
	}
	cfg := t.TempDir()
	return func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(cli, args...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+cfg)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		code := 0
		var ee *exec.ExitError
		switch err := cmd.Run(); {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}
}

// TestBuildCacheWithDockerCLI rebuilds through the real docker CLI: the second build of
// an unchanged Dockerfile and context says " ---> Using cache" for every step and runs
// nothing, --no-cache runs everything again, and docker builder prune empties the cache.
func TestBuildCacheWithDockerCLI(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	state := t.TempDir()
	if err := os.Mkdir(filepath.Join(state, "builds"), 0o700); err != nil {
		t.Fatal(err)
	}
	cache, err := builder.NewLocalCache(filepath.Join(state, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	ts := newBuildServer(t, BuildConfig{Workspace: builder.Workspace{
		Isolation: isolation.Chroot, StateDir: filepath.Join(state, "builds"), Cache: cache,
	}})
	ctxDir := t.TempDir()
	for name, data := range map[string]string{
		"Dockerfile": "FROM " + w.busybox + "\nENV GREETING=hi\nCOPY a.txt /a.txt\nRUN echo ran-the-run && cat /a.txt\nWORKDIR /w\n",
		"a.txt":      "one\n",
	} {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	docker := dockerCLI(t, "tcp://"+strings.TrimPrefix(ts.URL, "http://"), ctxDir)
	build := func(args ...string) string {
		t.Helper()
		out, errOut, code := docker("", append([]string{"build"}, append(args, ".")...)...)
		if code != 0 {
			t.Fatalf("docker build %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return out
	}
	idOf := func(out string) string {
		i := strings.LastIndex(out, "Successfully built ")
		if i < 0 {
			t.Fatalf("no image ID in\n%s", out)
		}
		return strings.TrimSpace(out[i+len("Successfully built "):])[:12]
	}

	first := build("-t", "cached")
	if strings.Count(first, "\nran-the-run\n") != 1 || strings.Contains(first, "Using cache") {
		t.Fatalf("first build: want the RUN to run and no cache hit\n%s", first)
	}
	second := build("-t", "cached")
	if strings.Contains(second, "\nran-the-run\n") || strings.Count(second, " ---> Using cache\n") != 4 {
		t.Fatalf("second build: want 4 cached steps and no RUN\n%s", second)
	}
	if idOf(first) != idOf(second) {
		t.Errorf("image IDs differ: %s then %s", idOf(first), idOf(second))
	}
	if noCache := build("--no-cache"); strings.Contains(noCache, "Using cache") || !strings.Contains(noCache, "\nran-the-run\n") {
		t.Errorf("--no-cache: want every step to run\n%s", noCache)
	}

	if err := os.WriteFile(filepath.Join(ctxDir, "a.txt"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := build()
	if strings.Count(changed, " ---> Using cache\n") != 1 || !strings.Contains(changed, "\nran-the-run\n") {
		t.Errorf("a.txt changed: want only ENV from the cache, COPY and RUN again\n%s", changed)
	}

	out, errOut, code := docker("", "builder", "prune", "-f")
	if code != 0 || !strings.Contains(out, "Total reclaimed space:") || strings.Contains(out, "Total reclaimed space: 0B") {
		t.Fatalf("docker builder prune: exit %d\n%s\n%s", code, out, errOut)
	}
	if after := build(); strings.Contains(after, "Using cache") {
		t.Errorf("after prune: want no cache hit\n%s", after)
	}
}
