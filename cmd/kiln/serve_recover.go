package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/isolation"
)

// serveLockName is the file in --state-dir every running `kiln serve` holds a shared
// lock on. A server that starts and gets it exclusively knows no other server uses the
// state directory, so what it finds in builds/ was left by a crash.
const serveLockName = "serve.lock"

// scratchPrefixes name the per-build scratch directories the front doors create in
// builds/ (apiserver's api-build- and api-load-, buildkitapi's bk-build-).
var scratchPrefixes = [...]string{"api-build-", "api-load-", "bk-build-"}

// stateLock is a server's hold on its state directory.
type stateLock struct {
	f *os.File
	// alone says no other server used the state directory when this one started: it
	// cleaned up, and may sweep the store's temporaries too.
	alone bool
}

// Close gives the state directory up.
func (l *stateLock) Close() error { return l.f.Close() }

// recoverState takes the state directory's serve lock and, when no other server
// holds it, removes what a server killed mid-build left behind: overlay mounts and
// scratch directories under builds/, and temporary files of the step cache and the
// cache mounts. Store temporaries are the store's own (store.CollectGarbage). It
// returns the lock, held shared until the server exits, so that a second server on the
// same state directory (one that drains while its successor starts) is not cleaned
// from under.
func recoverState(stateDir string, lg logrus.FieldLogger) (*stateLock, error) {
	f, err := os.OpenFile(filepath.Join(stateDir, serveLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	lock := &stateLock{f: f}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lg.Infof("Another kiln serve uses the state directory %s: leaving its build directories alone", stateDir)
	} else {
		lock.alone = true
		cleanState(stateDir, lg)
	}
	// Downgrade (or take) the shared hold every running server keeps.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return lock, nil
}

// cleanState removes crash leftovers; what cannot be removed is logged, not fatal.
func cleanState(stateDir string, lg logrus.FieldLogger) {
	builds := filepath.Join(stateDir, "builds")
	mounts, err := mountsUnder(builds)
	if err != nil {
		lg.WithError(err).Warn("Reading the mount table to release leftover build roots")
	}
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			lg.WithError(err).Warnf("Unmounting the leftover build root %s", m)
		}
	}
	removed := 0
	if entries, err := os.ReadDir(builds); err == nil {
		for _, e := range entries {
			if !e.IsDir() || !hasScratchPrefix(e.Name()) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(builds, e.Name())); err != nil {
				lg.WithError(err).Warnf("Removing the leftover build directory %s", e.Name())
				continue
			}
			removed++
		}
	}
	temps := removeTemps(filepath.Join(stateDir, "cache", "build"), lg)
	temps += removeMountCacheTemps(filepath.Join(stateDir, "cache", "mounts"), lg)
	if removed+len(mounts)+temps > 0 {
		lg.Infof("Removed what an earlier server left behind: %d build directories, %d mounts, %d temporary files", removed, len(mounts), temps)
	}
}

func hasScratchPrefix(name string) bool {
	for _, p := range scratchPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// mountsUnder returns the mount points at or below dir, deepest first, from
// /proc/self/mountinfo.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := isolation.UnescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// isTempName matches the temporaries of atomicfile (".<name>.tmp-*") and of the step
// cache's blobs ("<digest>.tmp-*").
func isTempName(name string) bool {
	return strings.Contains(name, ".tmp-")
}

// removeTemps removes the temporary files under dir; it returns how many.
func removeTemps(dir string, lg logrus.FieldLogger) int {
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isTempName(d.Name()) {
			return nil
		}
		if err := os.Remove(p); err != nil {
			lg.WithError(err).Warnf("Removing the leftover temporary file %s", p)
			return nil
		}
		n++
		return nil
	})
	return n
}

// removeMountCacheTemps removes the half-seeded "new-*" directories of cache mount
// entries (<dir>/<entry>/new-*) and their records' temporaries; it returns how many.
// The mounts' data is the builds' own and is not looked into.
func removeMountCacheTemps(dir string, lg logrus.FieldLogger) int {
	n := 0
	temps, _ := filepath.Glob(filepath.Join(dir, "*", ".*.tmp-*"))
	for _, p := range temps {
		if err := os.Remove(p); err == nil {
			n++
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "new-*"))
	for _, p := range leftovers {
		if err := os.RemoveAll(p); err != nil {
			lg.WithError(err).Warnf("Removing the leftover cache mount directory %s", p)
			continue
		}
		n++
	}
	return n
}
