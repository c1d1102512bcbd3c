package builder

import (
	"context"
	"sync"
	"testing"
	"time"
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
func acquireAsync(ctx context.Context, q *Queue, r *reports) <-chan func() {
	ch := make(chan func(), 1)
	go func() {
		release, err := q.Acquire(ctx, r.report)
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
	q := NewQueue(Workspace{}, 1)
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
	q := NewQueue(Workspace{}, 2)
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
	q := NewQueue(Workspace{}, 1)
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
