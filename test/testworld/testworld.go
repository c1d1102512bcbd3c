// Package testworld lets kiln's Go tests find the "test world" that scripts/world.sh
// brings up: a registry on a loopback address holding busybox:1.35 and debian:bookworm,
// and a docker daemon used as the oracle and to load or run built images.
//
// Tests ask for the part of the world they need (Registry, Docker, RequireRoot, E2E) and
// are skipped with a message naming the fix when it is absent, so `go test ./...` works on
// any machine. CI sets KILN_TEST_WORLD_REQUIRED=1 (make test does), which turns those skips
// into failures: a CI run that silently skipped every integration test would prove nothing.
// Under `go test -short` the world is never consulted and world-dependent tests skip.
package testworld

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Environment variables the helpers read. scripts/world.sh prints the export lines for the
// first three; the Makefile sets the rest.
const (
	// EnvRegistry names the test registry's host:port (default DefaultRegistry).
	EnvRegistry = "KILN_TEST_REGISTRY"
	// EnvDocker is "0" to keep tests away from docker even when a daemon answers, "1"
	// when world.sh saw one.
	EnvDocker = "KILN_TEST_DOCKER"
	// EnvRequired set to "1" makes a missing registry or daemon fail the test, not skip it.
	EnvRequired = "KILN_TEST_WORLD_REQUIRED"
	// EnvE2E set to "1" enables long end-to-end suites (make test-e2e).
	EnvE2E = "KILN_TEST_E2E"
	// EnvKilnBinary points KilnBinary at a prebuilt kiln instead of building one.
	EnvKilnBinary = "KILN_TEST_BINARY"
)

// DefaultRegistry is where scripts/world.sh puts the registry, and the host the
// conformance corpus names in its FROM lines.
const DefaultRegistry = "127.0.0.1:5000"

// Repository:tag names of the base images in the test registry. The conformance corpus
// spells them out literally, so world.sh and these must agree.
const (
	BusyboxRepoTag = "busybox:1.35"
	DebianRepoTag  = "debian:bookworm"
)

// probeTimeout bounds each look at the world so a wedged daemon costs seconds, not the
// whole test timeout.
const probeTimeout = 5 * time.Second

const worldHint = "run `scripts/world.sh up` (or `make test`) to bring up the test world"

// Registry returns the test registry's host:port after checking that it answers /v2/.
// It skips the test (fails it when KILN_TEST_WORLD_REQUIRED=1) when nothing answers, and
// fails it when KILN_TEST_REGISTRY names a non-loopback address: tests must never push
// anywhere but this machine.
func Registry(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("testworld: registry tests do not run with -short")
		return ""
	}
	host := os.Getenv(EnvRegistry)
	if host == "" {
		host = DefaultRegistry
	}
	if err := checkLoopback(host); err != nil {
		t.Fatalf("testworld: %s: %v", EnvRegistry, err)
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := probeRegistry(ctx, host); err != nil {
		unavailable(t, required(), "testworld: no registry: %v; %s", err, worldHint)
		return ""
	}
	return host
}

// Busybox returns the full reference of the test world's busybox:1.35 image, skipping
// like Registry when the registry is absent.
func Busybox(t testing.TB) string {
	t.Helper()
	host := Registry(t)
	if host == "" {
		return ""
	}
	return host + "/" + BusyboxRepoTag
}

// Debian returns the full reference of the test world's debian:bookworm image, skipping
// like Registry when the registry is absent.
func Debian(t testing.TB) string {
	t.Helper()
	host := Registry(t)
	if host == "" {
		return ""
	}
	return host + "/" + DebianRepoTag
}

// Docker checks that a docker daemon answers (at DOCKER_HOST, else the default socket)
// and returns the path of the docker CLI to run against it. It skips the test (fails it
// when KILN_TEST_WORLD_REQUIRED=1) when no daemon answers, and always skips when
// KILN_TEST_DOCKER=0.
func Docker(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("testworld: docker tests do not run with -short")
		return ""
	}
	if os.Getenv(EnvDocker) == "0" {
		t.Skipf("testworld: %s=0: docker tests disabled", EnvDocker)
		return ""
	}
	cli, err := exec.LookPath("docker")
	if err != nil {
		unavailable(t, required(), "testworld: no docker CLI on PATH: %v; %s", err, worldHint)
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := pingDocker(ctx, os.Getenv("DOCKER_HOST")); err != nil {
		unavailable(t, required(), "testworld: no docker daemon: %v; %s", err, worldHint)
		return ""
	}
	return cli
}

// RequireRoot skips the test unless it runs as root, which chroot isolation, mounts and
// chown need. CI runs as root, so these tests run there.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("testworld: needs root (running as uid %d)", euid)
	}
}

// E2E skips the test unless KILN_TEST_E2E=1 (set by `make test-e2e`), keeping suites
// that take minutes out of `make test`.
func E2E(t testing.TB) {
	t.Helper()
	if testing.Short() || os.Getenv(EnvE2E) != "1" {
		t.Skipf("testworld: end-to-end suite; run `make test-e2e` (or set %s=1)", EnvE2E)
	}
}

// required reports whether the environment demands a complete world.
func required() bool { return os.Getenv(EnvRequired) == "1" }

// unavailable ends the test for a missing piece of the world: a failure when the world
// is required, a skip otherwise. Callers return right after, so a test double that records
// instead of stopping the goroutine sees exactly one call.
func unavailable(t testing.TB, required bool, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if required {
		t.Fatalf("%s (%s=1)", msg, EnvRequired)
		return
	}
	t.Skip(msg)
}
