package apiserver

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// reports collects a waiter's queue messages.
type reports struct {
	mu    sync.Mutex
	lines []string
	seen  chan string
}

func newReports() *reports { return &reports{seen: make(chan string, 16)} }

func (r *reports) report(line string) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	r.seen <- line
}

func (r *reports) wait(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-r.seen:
		if got != want {
			t.Fatalf("report %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no report, want %q", want)
	}
}

// acquireAsync starts acquire in a goroutine; the channel yields its release func.
func acquireAsync(ctx context.Context, q *buildQueue, r *reports) <-chan func() {
	ch := make(chan func(), 1)
	go func() {
		release, err := q.acquire(ctx, r.report)
		if err != nil {
			close(ch)
			return
		}
		ch <- release
	}()
	return ch
}

func granted(t *testing.T, ch <-chan func()) func() {
	t.Helper()
	select {
	case release, ok := <-ch:
		if !ok {
			t.Fatal("acquire failed")
		}
		return release
	case <-time.After(5 * time.Second):
		t.Fatal("the slot was not granted")
		return nil
	}
}

func notGranted(t *testing.T, ch <-chan func()) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal("granted a slot that is taken")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestBuildQueueOrderAndPositions(t *testing.T) {
	t.Parallel()
	q := newBuildQueue(1, "")
	ctx := context.Background()
	first := granted(t, acquireAsync(ctx, q, newReports()))

	r2, r3 := newReports(), newReports()
	second := acquireAsync(ctx, q, r2)
	r2.wait(t, "Waiting for the build slot: 1 build(s) ahead")
	third := acquireAsync(ctx, q, r3)
	r3.wait(t, "Waiting for the build slot: 2 build(s) ahead")
	notGranted(t, second)

	first()
	first() // releasing twice frees one slot only
	release2 := granted(t, second)
	r3.wait(t, "Waiting for the build slot: 1 build(s) ahead")
	notGranted(t, third)
	release2()
	granted(t, third)()

	// The slot is free again: no waiting, no report.
	r4 := newReports()
	granted(t, acquireAsync(ctx, q, r4))()
	if len(r4.lines) != 0 {
		t.Errorf("reports for a free slot: %q", r4.lines)
	}
}

func TestBuildQueueConcurrent(t *testing.T) {
	t.Parallel()
	q := newBuildQueue(2, "")
	ctx := context.Background()
	a := granted(t, acquireAsync(ctx, q, newReports()))
	b := granted(t, acquireAsync(ctx, q, newReports()))
	r := newReports()
	c := acquireAsync(ctx, q, r)
	r.wait(t, "Waiting for the build slot: 2 build(s) ahead")
	a()
	granted(t, c)()
	b()
}

func TestBuildQueueCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	q := newBuildQueue(1, "")
	first := granted(t, acquireAsync(context.Background(), q, newReports()))

	ctx, cancel := context.WithCancel(context.Background())
	r2, r3 := newReports(), newReports()
	second := acquireAsync(ctx, q, r2)
	r2.wait(t, "Waiting for the build slot: 1 build(s) ahead")
	third := acquireAsync(context.Background(), q, r3)
	r3.wait(t, "Waiting for the build slot: 2 build(s) ahead")

	cancel() // the second client leaves: the third moves up
	if _, ok := <-second; ok {
		t.Fatal("a cancelled waiter got the slot")
	}
	r3.wait(t, "Waiting for the build slot: 1 build(s) ahead")
	first()
	granted(t, third)()
}

func TestBuildQueueFileLock(t *testing.T) {
	t.Parallel()
	lock := filepath.Join(t.TempDir(), "build.lock")
	q := newBuildQueue(1, lock)

	// Another process (here: another lock handle) holds the build lock.
	other := flock.New(lock)
	if ok, err := other.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	r := newReports()
	ch := acquireAsync(context.Background(), q, r)
	r.wait(t, "Waiting for the build lock "+lock+": another kiln process is building")
	notGranted(t, ch)
	if err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	release := granted(t, ch)

	// While the build runs the lock is held against other processes.
	probe := flock.New(lock)
	if ok, _ := probe.TryLock(); ok {
		t.Fatal("the build lock is not held during the build")
	}
	release()
	if ok, err := probe.TryLock(); !ok || err != nil {
		t.Fatalf("the build lock was not released: %v %v", ok, err)
	}
	probe.Unlock()
}

func TestBuildQueueCancelWaitingForFileLock(t *testing.T) {
	t.Parallel()
	lock := filepath.Join(t.TempDir(), "build.lock")
	q := newBuildQueue(1, lock)
	other := flock.New(lock)
	if ok, err := other.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	defer other.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := q.acquire(ctx, func(string) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
	// The in-process slot was given back.
	q.mu.Lock()
	running := q.running
	q.mu.Unlock()
	if running != 0 {
		t.Errorf("%d slots still taken", running)
	}
}
