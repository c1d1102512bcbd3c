package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// inPlaceWorkspace is an in-place workspace whose root is a temporary directory in
// place of "/": the tests below never touch this machine's root. They use no RUN,
// which would execute in the real "/".
func inPlaceWorkspace(t *testing.T) (ws Workspace, root string) {
	t.Helper()
	root = t.TempDir()
	ws = Workspace{Isolation: isolation.InPlace, StateDir: t.TempDir(), Ignore: snapshot.NewIgnore("/kept"), root: root}
	writeFile(t, root, "kept/file", "survives every reset")
	writeFile(t, root, "left-over/file", "from an earlier build")
	return ws, root
}

// rootEntries lists what the fake root holds at its top.
func rootEntries(t *testing.T, root string) []string {
	t.Helper()
	des, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// lockHeld reports whether another handle cannot take the lock at path.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	probe := flock.New(path)
	ok, err := probe.TryLock()
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		_ = probe.Unlock()
	}
	return !ok
}

// TestInPlaceBuildLocksAndResets checks the engine's in-place rules, which every
// front door (kiln build, kiln serve) gets from Build: the build lock is held while
// the build runs, what a crashed build left in the root is gone before the build uses
// it, and the root is back to its pristine state when it ends, whether it succeeded,
// failed or was cancelled.
func TestInPlaceBuildLocksAndResets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		cancelAt   int // cancel the build when this step starts; 0 never
		wantErr    string
	}{
		{name: "success", dockerfile: "FROM scratch\nCOPY a /a\nCOPY a /b\n"},
		{name: "failure", dockerfile: "FROM scratch\nCOPY a /a\nCOPY missing /b\n", wantErr: "missing"},
		{name: "cancellation", dockerfile: "FROM scratch\nCOPY a /a\nCOPY a /b\n", cancelAt: 3, wantErr: context.Canceled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws, root := inPlaceWorkspace(t)
			ctxDir := t.TempDir()
			writeFile(t, ctxDir, "a", "a")
			bctx, err := contexts.FromDir(ctxDir)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var heldDuring []bool
			var sawA, sawLeftOver bool
			events := func(e Event) {
				if s, ok := e.(StepStarted); ok {
					heldDuring = append(heldDuring, lockHeld(t, ws.LockPath()))
					if s.Step == 3 {
						_, err := os.Stat(filepath.Join(root, "a"))
						sawA = err == nil
						_, err = os.Stat(filepath.Join(root, "left-over"))
						sawLeftOver = err == nil
					}
					if s.Step == tt.cancelAt {
						cancel()
					}
				}
			}
			_, err = Build(ctx, &Request{Dockerfile: []byte(tt.dockerfile), Context: bctx},
				WithWorkspace(ws), WithEvents(events))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Build: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Build error %v, want one with %q", err, tt.wantErr)
			}
			if !sawA {
				t.Error("the build did not work in the given root")
			}
			if sawLeftOver {
				t.Error("a crashed build's left-over file was still in the root while the build ran")
			}
			for i, held := range heldDuring {
				if !held {
					t.Errorf("step %d ran without the build lock", i+1)
				}
			}
			if lockHeld(t, ws.LockPath()) {
				t.Error("the build lock is still held after the build")
			}
			if got := rootEntries(t, root); len(got) != 1 || got[0] != "kept" {
				t.Errorf("root after the build holds %v, want only the ignored kept", got)
			}
		})
	}
}

// TestInPlaceBuildWaitsForTheLock checks that an in-place build waits while another
// process holds the build lock, says so, and gives up when its context ends.
func TestInPlaceBuildWaitsForTheLock(t *testing.T) {
	t.Parallel()
	ws, root := inPlaceWorkspace(t)
	ws.LockFile = filepath.Join(t.TempDir(), "shared.lock")
	other := flock.New(ws.LockFile)
	if ok, err := other.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	defer other.Unlock()
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var infos []string
	events := func(e Event) {
		if i, ok := e.(Info); ok {
			mu.Lock()
			infos = append(infos, i.Message)
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err = Build(ctx, &Request{Dockerfile: []byte("FROM scratch\n"), Context: bctx}, WithWorkspace(ws), WithEvents(events))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Build error %v, want the context's", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "Waiting for the build lock " + ws.LockFile + ": another kiln process is building"
	if len(infos) == 0 || infos[0] != want {
		t.Errorf("events %q, want %q first", infos, want)
	}
	// A build that never ran leaves the root alone: it is the lock holder's.
	if got := rootEntries(t, root); len(got) != 2 {
		t.Errorf("root holds %v, want kept and left-over untouched", got)
	}
}
