package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/kiln-build/kiln/snapshot"
)

// The rules of an in-place build live here, behind the engine, so that every front
// door gets them the same: a build in the container's own "/" holds the workspace's
// build lock while it runs (two kiln processes sharing one root never build at once),
// and the root goes back to its pristine state when the build ends, however it ends.
// (Each stage resets the root before it first uses it, so a build also starts from
// the pristine root.)

// lockPollInterval is how often an in-place build waiting for another process's
// build lock retries.
const lockPollInterval = 250 * time.Millisecond

// LockPath is the file in-place builds of this workspace hold locked while they run:
// LockFile, or build.lock in the state directory.
func (ws Workspace) LockPath() string {
	if ws.LockFile != "" {
		return ws.LockFile
	}
	return filepath.Join(ws.StateDir, "build.lock")
}

// rootDir is the in-place build root: the container's "/", or the directory a test
// put in its place.
func (ws Workspace) rootDir() string {
	if ws.root != "" {
		return ws.root
	}
	return "/"
}

// claimRoot takes an in-place workspace's build lock, telling emit when it has to wait
// for another process, and returns the function that resets the root and gives the
// lock back. It does nothing in chroot isolation.
func claimRoot(ctx context.Context, ws Workspace, emit func(Event)) (release func(), err error) {
	if !ws.InPlace() {
		return func() {}, nil
	}
	unlock, err := lockRoot(ctx, ws, emit)
	if err != nil {
		return nil, err
	}
	return func() {
		// The root is reset even when the build failed or was cancelled: the next
		// build, or the next process, must find it pristine.
		if err := snapshot.Reset(context.WithoutCancel(ctx), ws.rootDir(), ws.Ignore); err != nil {
			emit(Warning{Message: fmt.Sprintf("Resetting the in-place root after the build: %v", err)})
		}
		unlock()
	}, nil
}

// lockRoot takes the workspace's build lock, waiting (and saying so) while another
// process holds it, and returns the function that gives it back.
func lockRoot(ctx context.Context, ws Workspace, emit func(Event)) (unlock func(), err error) {
	path := ws.LockPath()
	fl := flock.New(path)
	ok, err := fl.TryLock()
	if err == nil && !ok {
		emit(Info{Message: "Waiting for the build lock " + path + ": another kiln process is building"})
		ok, err = fl.TryLockContext(ctx, lockPollInterval)
	}
	if err != nil || !ok {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil { // not taken, and no reason given: never format a nil error
			return nil, fmt.Errorf("build lock %s: another process holds it; wait for its build to end, or remove the lock file if no kiln process is running", path)
		}
		return nil, fmt.Errorf("build lock %s: %w", path, err)
	}
	return func() { _ = fl.Unlock() }, nil
}
