package testworld

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// modulePath identifies kiln's go.mod when walking up from a test's directory.
const modulePath = "github.com/kiln-build/kiln"

// kilnPackage is the main package KilnBinary builds, relative to the module root.
const kilnPackage = "./cmd/kiln"

// binDirPrefix names the per-test-process directories KilnBinary builds into.
const binDirPrefix = "kiln-testbin-"

// buildTimeout only ends a hung `go build ./cmd/kiln`: a cold build cache on 2 cores takes
// about a minute, but a loaded machine building a new toolchain's standard library took
// more than five (a slow machine must never fail a test).
const buildTimeout = 25 * time.Minute

// KilnBinary returns the path of a kiln binary built from this checkout's ./cmd/kiln,
// or of KILN_TEST_BINARY when that is set. The build happens once per test process: the
// binary lives in a directory keyed by the process ID, guarded by a file lock, so parallel
// tests in one package share it without package-level state. Directories left by test
// processes that have exited are removed on the way.
func KilnBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvKilnBinary); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatalf("testworld: %s=%q: %v", EnvKilnBinary, p, err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("testworld: %s: %v", EnvKilnBinary, err)
		}
		return abs
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin, err := buildOnce(ctx, root, kilnPackage, os.TempDir(), os.Getpid())
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	return bin
}

// moduleRoot walks up from dir to the directory whose go.mod declares kiln's module.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && declaresModule(data, modulePath) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod for %s above %s", modulePath, dir)
		}
		d = parent
	}
}

// declaresModule reports whether go.mod content declares module path.
func declaresModule(gomod []byte, path string) bool {
	for line := range bytes.Lines(gomod) {
		f := strings.Fields(string(line))
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}

// buildOnce builds the main package pkg of the module at root into tmp/kiln-testbin-PID/kiln
// unless an earlier call in the same process already did. The flock serialises parallel callers; the rename
// makes a half-written binary impossible to observe.
func buildOnce(ctx context.Context, root, pkg, tmp string, pid int) (string, error) {
	dir := filepath.Join(tmp, binDirPrefix+strconv.Itoa(pid))
	bin := filepath.Join(dir, "kiln")
	lock := flock.New(dir + ".lock")
	if err := lock.Lock(); err != nil {
		return "", fmt.Errorf("lock %s: %w", dir+".lock", err)
	}
	defer lock.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	removeStale(tmp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build kiln: %w", err)
	}
	part := bin + ".part"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", part, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, root, err, out)
	}
	if err := os.Rename(part, bin); err != nil {
		return "", fmt.Errorf("build kiln: %w", err)
	}
	return bin, nil
}

// removeStale deletes kiln-testbin-PID directories (and their lock files) whose process
// no longer exists. Errors are ignored: a leftover binary only wastes disk.
func removeStale(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), binDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || processExists(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
		_ = os.Remove(filepath.Join(tmp, e.Name()+".lock"))
	}
}

// processExists reports whether pid names a live process on this (Linux) machine.
func processExists(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return !errors.Is(err, os.ErrNotExist)
}
