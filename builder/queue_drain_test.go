package builder

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/isolation"
)

// TestQueueDrain: once drained, the queue refuses new builds (Admit and Acquire) and
// the waiting ones with a *DrainingError, the running build keeps its slot, and
// WaitIdle returns when that build is done.
func TestQueueDrain(t *testing.T) {
	t.Parallel()
	q := NewQueue(Workspace{Isolation: isolation.Chroot}, 1)
	ctx := context.Background()
	release, err := q.Acquire(ctx, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := q.Acquire(ctx, func(string) {})
		waiting <- err
	}()
	for q.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	q.Drain()
	select {
	case err := <-waiting:
		if !IsDraining(err) {
			t.Errorf("the waiting build got %v, want a *DrainingError", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting build was not refused when the queue drained")
	}
	if err := q.Admit(); !IsDraining(err) {
		t.Errorf("Admit while draining: %v", err)
	}
	if _, err := q.Acquire(ctx, func(string) {}); !IsDraining(err) {
		t.Errorf("Acquire while draining: %v", err)
	}
	if !q.Draining() || q.Running() != 1 {
		t.Errorf("Draining %v, Running %d; want true, 1", q.Draining(), q.Running())
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.WaitIdle(short, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitIdle with a build running: %v", err)
	}
	release()
	if err := q.WaitIdle(ctx, time.Millisecond); err != nil {
		t.Errorf("WaitIdle once the build is done: %v", err)
	}
}

// waitObserver records QueueWaited calls.
type waitObserver struct {
	nopObserver
	mu    sync.Mutex
	waits []time.Duration
}

func (o *waitObserver) QueueWaited(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waits = append(o.waits, d)
}

// TestQueueObserverWait: the workspace's Observer is told how long each build
// waited for its slot.
func TestQueueObserverWait(t *testing.T) {
	t.Parallel()
	obs := &waitObserver{}
	q := NewQueue(Workspace{Isolation: isolation.Chroot, Observer: obs}, 1)
	ctx := context.Background()
	release, err := q.Acquire(ctx, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, _ := q.Acquire(ctx, func(string) {})
		got <- r
	}()
	for q.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	release()
	(<-got)()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.waits) != 2 || obs.waits[1] < 50*time.Millisecond {
		t.Errorf("waits %v, want two, the second at least 50ms", obs.waits)
	}
}
