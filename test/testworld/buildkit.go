package testworld

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// Environment variables scripts/buildkit-tools.sh env (and so scripts/world.sh env) prints
// for the BuildKit clients and the reference daemon it built.
const (
	// EnvBuildxConfig is a DOCKER_CONFIG directory whose cli-plugins/ holds docker-buildx.
	EnvBuildxConfig = "KILN_BUILDX_CONFIG"
	// EnvBuildctl is the path of BuildKit's client, buildctl.
	EnvBuildctl = "KILN_BUILDCTL"
	// EnvBuildkitd is the path of BuildKit's daemon, buildkitd.
	EnvBuildkitd = "KILN_BUILDKITD"
	// EnvToolsCache is the cache root buildkit-tools.sh installs into (default
	// DefaultToolsCache); the helpers look there when the variables above are unset.
	EnvToolsCache = "KILN_TOOLS_CACHE"
)

// DefaultToolsCache is where scripts/buildkit-tools.sh caches what it builds.
const DefaultToolsCache = "/var/cache/kiln-tools"

const toolsHint = "run `scripts/buildkit-tools.sh install` (`scripts/world.sh up` does) and " +
	"`eval \"$(scripts/world.sh env)\"`"

// buildkitdStartTimeout bounds how long buildkitd may take to answer `buildctl debug
// workers`; the first start on a busy two-core machine takes seconds.
const buildkitdStartTimeout = 60 * time.Second

// buildkitdStopGrace is how long buildkitd gets after SIGTERM to unmount and exit before
// its process group is killed.
const buildkitdStopGrace = 10 * time.Second

func toolsCache() string {
	if c := os.Getenv(EnvToolsCache); c != "" {
		return c
	}
	return DefaultToolsCache
}

// Buildx returns a fresh DOCKER_CONFIG directory for this test whose
// cli-plugins/docker-buildx links to the buildx plugin scripts/buildkit-tools.sh built
// (in KILN_BUILDX_CONFIG, else the tools cache): run the docker CLI with DOCKER_CONFIG set
// to it, never with the machine's ~/.docker. What buildx stores there (builders made with
// `docker buildx create`, the current builder) stays private to the test and goes with
// its temp dir. It skips the test (fails it when KILN_TEST_WORLD_REQUIRED=1) when the
// plugin is not installed.
func Buildx(t testing.TB) (dockerConfig string) {
	t.Helper()
	if testing.Short() {
		t.Skip("testworld: buildx tests do not run with -short")
		return ""
	}
	dir := os.Getenv(EnvBuildxConfig)
	if dir == "" {
		dir = filepath.Join(toolsCache(), "docker-config")
	}
	plugin := filepath.Join(dir, "cli-plugins", "docker-buildx")
	if err := executable(plugin); err != nil {
		unavailable(t, required(), "testworld: no buildx plugin: %v; %s", err, toolsHint)
		return ""
	}
	own := t.TempDir()
	if err := os.Mkdir(filepath.Join(own, "cli-plugins"), 0o755); err != nil {
		t.Fatalf("testworld: %v", err)
		return ""
	}
	if err := os.Symlink(plugin, filepath.Join(own, "cli-plugins", "docker-buildx")); err != nil {
		t.Fatalf("testworld: %v", err)
		return ""
	}
	return own
}

// Buildctl returns the path of BuildKit's client, skipping the test (failing it when
// KILN_TEST_WORLD_REQUIRED=1) when scripts/buildkit-tools.sh has not installed it.
func Buildctl(t testing.TB) string {
	t.Helper()
	return buildkitBinary(t, EnvBuildctl, "buildctl")
}

// Buildkitd returns the path of BuildKit's daemon, skipping the test (failing it when
// KILN_TEST_WORLD_REQUIRED=1) when scripts/buildkit-tools.sh has not installed it.
func Buildkitd(t testing.TB) string {
	t.Helper()
	return buildkitBinary(t, EnvBuildkitd, "buildkitd")
}

// buildkitBinary finds name: the path in env, else the newest buildkit-*/name in the tools
// cache, else name on PATH.
func buildkitBinary(t testing.TB, env, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("testworld: %s tests do not run with -short", name)
		return ""
	}
	if p := os.Getenv(env); p != "" {
		if err := executable(p); err != nil {
			unavailable(t, required(), "testworld: %s: %v; %s", env, err, toolsHint)
			return ""
		}
		return p
	}
	cached, _ := filepath.Glob(filepath.Join(toolsCache(), "buildkit-v*", name))
	sort.Strings(cached)
	for i := len(cached) - 1; i >= 0; i-- {
		if executable(cached[i]) == nil {
			return cached[i]
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	unavailable(t, required(), "testworld: no %s (%s unset, none in %s, none on PATH); %s",
		name, env, toolsCache(), toolsHint)
	return ""
}

// executable checks that path is a regular file with an execute bit.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// buildkitdConfig is the buildkitd.toml StartBuildkitd writes: the OCI worker only, on
// the native snapshotter (plain copies: nothing stays mounted when the daemon is killed,
// so the test's temp dir can always be removed), and the test registry over plain HTTP.
const buildkitdConfig = `[worker.oci]
  enabled = true
  snapshotter = "native"
  gc = false

[worker.containerd]
  enabled = false

[registry.%q]
  http = true
  insecure = true
`

// StartBuildkitd runs the reference BuildKit daemon for this test — as root, with the OCI
// worker (runc), its state under t.TempDir(), no containerd worker, and the test registry
// (KILN_TEST_REGISTRY, default DefaultRegistry) as a plain-HTTP registry — and returns its address, unix:///…/buildkitd.sock, once
// `buildctl debug workers` answers there. When the test ends the daemon gets SIGTERM,
// then its process group SIGKILL. Skips (fails under KILN_TEST_WORLD_REQUIRED=1) when
// buildkitd, buildctl or runc is missing; skips when not root.
func StartBuildkitd(t testing.TB) (addr string) {
	t.Helper()
	RequireRoot(t)
	bkd, ctl := Buildkitd(t), Buildctl(t)
	if bkd == "" || ctl == "" {
		return ""
	}
	if _, err := exec.LookPath("runc"); err != nil {
		unavailable(t, required(), "testworld: buildkitd's OCI worker needs runc: %v; %s", err, toolsHint)
		return ""
	}
	state := t.TempDir()
	// A unix socket path must fit in 108 bytes; t.TempDir() names can be longer.
	sockDir, err := os.MkdirTemp("", "kiln-bk")
	if err != nil {
		t.Fatalf("testworld: %v", err)
		return ""
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	addr = "unix://" + filepath.Join(sockDir, "buildkitd.sock")
	cfg := filepath.Join(state, "buildkitd.toml")
	registry := os.Getenv(EnvRegistry)
	if registry == "" {
		registry = DefaultRegistry
	}
	if err := os.WriteFile(cfg, fmt.Appendf(nil, buildkitdConfig, registry), 0o644); err != nil {
		t.Fatalf("testworld: %v", err)
		return ""
	}
	args := []string{"--config", cfg, "--root", filepath.Join(state, "root"), "--addr", addr,
		"--oci-worker=true", "--containerd-worker=false"}
	probe := func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, ctl, "--addr", addr, "debug", "workers").CombinedOutput()
		if err != nil {
			return fmt.Errorf("buildctl debug workers: %w: %s", err, out)
		}
		return nil
	}
	startDaemon(t, "buildkitd", bkd, args, probe, buildkitdStartTimeout, buildkitdStopGrace)
	return addr
}
