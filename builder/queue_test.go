package builder

import (
	"context"
	"strings"
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

func TestBuildQueueBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		slots     int
		maxQueued int
		// holders acquire first and keep their slot or place; then one more arrives.
		holders  int
		wantFull bool
	}{
		{name: "unbounded", slots: 1, maxQueued: 0, holders: 5, wantFull: false},
		{name: "room in the queue", slots: 1, maxQueued: 2, holders: 2, wantFull: false},
		{name: "queue full", slots: 1, maxQueued: 2, holders: 3, wantFull: true},
		{name: "free slot, empty bound", slots: 2, maxQueued: 1, holders: 1, wantFull: false},
		{name: "two slots, queue full", slots: 2, maxQueued: 1, holders: 3, wantFull: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := NewQueue(Workspace{}, tt.slots, WithMaxQueued(tt.maxQueued))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i := range tt.holders {
				r := newReports()
				ch := acquireAsync(ctx, q, r)
				if i < tt.slots {
					defer granted(t, ch)()
				} else {
					<-r.seen // queued
				}
			}
			if got := q.Admit() != nil; got != tt.wantFull {
				t.Fatalf("Admit() refuses = %v, want %v", got, tt.wantFull)
			}
			if !tt.wantFull {
				return
			}
			_, err := q.Acquire(ctx, func(string) { t.Error("a refused build was queued") })
			if !IsQueueFull(err) {
				t.Fatalf("Acquire on a full queue: %v, want a QueueFullError", err)
			}
			if want := "--max-queued-builds"; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s", err, want)
			}
		})
	}
}

// A client that leaves while queued gives its place up: the bounded queue takes the
// next build.
func TestBuildQueueBoundedCancelFreesPlace(t *testing.T) {
	t.Parallel()
	q := NewQueue(Workspace{}, 1, WithMaxQueued(1))
	first := granted(t, acquireAsync(context.Background(), q, newReports()))
	ctx, cancel := context.WithCancel(context.Background())
	r := newReports()
	queued := acquireAsync(ctx, q, r)
	<-r.seen
	if q.Admit() == nil {
		t.Fatal("the queue of one waiting build is not full")
	}
	cancel()
	if _, ok := <-queued; ok {
		t.Fatal("a cancelled waiter got the slot")
	}
	if n := q.Waiting(); n != 0 {
		t.Fatalf("%d build(s) still waiting after the client left", n)
	}
	r2 := newReports()
	next := acquireAsync(context.Background(), q, r2)
	<-r2.seen
	first()
	granted(t, next)()
}

// WithIdle's function runs when the last running build releases its slot with none
// waiting, and not while another build still runs or takes the slot over.
func TestBuildQueueIdle(t *testing.T) {
	t.Parallel()
	idle := make(chan struct{}, 4)
	q := NewQueue(Workspace{}, 2, WithIdle(func() { idle <- struct{}{} }))
	ctx := context.Background()
	notIdle := func(when string) {
		t.Helper()
		select {
		case <-idle:
			t.Fatalf("idle called %s", when)
		case <-time.After(50 * time.Millisecond):
		}
	}
	a := granted(t, acquireAsync(ctx, q, newReports()))
	b := granted(t, acquireAsync(ctx, q, newReports()))
	r := newReports()
	c := acquireAsync(ctx, q, r)
	r.wait(t, "Waiting for the build slot: 2 build(s) ahead")
	a() // hands the slot over to c
	notIdle("when a slot was handed over")
	release := granted(t, c)
	b()
	notIdle("while a build still runs")
	release()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("idle not called after the last build released its slot")
	}
}
