package builder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Queue hands out build slots in arrival order: one for in-place isolation, where
// every build shares the container's "/", a server's --max-concurrent-builds for chroot
// isolation. Every front door of a server takes its slots from the same Queue, so a
// /build and a BuildKit solve wait for each other.
// A waiting build is told how many builds are ahead of it, and again whenever that
// changes. Serializing in-place builds across processes (a restarted server whose old
// process still drains, a `kiln build` run by hand in the pod) is the engine's build
// lock, which builder.Build takes.
type Queue struct {
	slots int
	// maxQueued bounds the builds waiting for a slot; 0 means no bound.
	maxQueued int

	// observe is told how long each build waited (Workspace.Observer).
	observe Observer

	mu       sync.Mutex
	running  int
	waiting  []*waiter
	draining bool // Drain was called: builds without a slot are refused
	idle     func()
}

type waiter struct {
	granted chan struct{} // closed when the slot is handed over
	moved   chan struct{} // signalled when the waiter's position changed
}

// QueueOption configures a Queue.
type QueueOption func(*Queue)

// WithMaxQueued bounds the builds that may wait for a slot at once: Acquire refuses
// more with a *QueueFullError. n <= 0 means no bound.
func WithMaxQueued(n int) QueueOption {
	return func(q *Queue) { q.maxQueued = max(n, 0) }
}

// WithIdle sets a function called, on a goroutine of its own, each time the last
// running build releases its slot and none waits. kiln serve returns the memory the
// build used to the system then (debug.FreeOSMemory), so that its resident size
// between builds, and the peak of the next build, is what the server needs rather
// than what the largest build left behind.
func WithIdle(fn func()) QueueOption {
	return func(q *Queue) { q.idle = fn }
}

// QueueFullError is Acquire's refusal when the queue already holds its most waiting
// builds (kiln serve's --max-queued-builds). Front doors answer it with "try again
// later": HTTP 503, gRPC ResourceExhausted.
type QueueFullError struct {
	// Max is the bound that was reached.
	Max int
}

// Error says what was refused and which flag sets the bound.
func (e *QueueFullError) Error() string {
	return fmt.Sprintf("the build queue is full: %d build(s) already wait for a build slot (kiln serve --max-queued-builds %d); try again later", e.Max, e.Max)
}

// IsQueueFull reports whether err is, or wraps, a *QueueFullError.
func IsQueueFull(err error) bool {
	var qf *QueueFullError
	return errors.As(err, &qf)
}

// NewQueue returns a queue of slots build slots (at least one); in-place workspaces
// get one whatever slots says.
func NewQueue(ws Workspace, slots int, opts ...QueueOption) *Queue {
	if ws.InPlace() {
		slots = 1
	}
	if slots < 1 {
		slots = 1
	}
	q := &Queue{slots: slots, observe: observerOf(ws.Observer)}
	for _, o := range opts {
		o(q)
	}
	return q
}

// Admit returns the *QueueFullError Acquire would return for a build arriving now
// (every slot is taken and the queue holds its most waiting builds), or nil. A front
// door asks before it receives a build context, so that a refused client uploads
// nothing; the answer may be stale by the time it calls Acquire, which decides.
func (q *Queue) Admit() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.draining {
		return &DrainingError{}
	}
	if q.fullLocked() {
		return &QueueFullError{Max: q.maxQueued}
	}
	return nil
}

func (q *Queue) fullLocked() bool {
	return q.maxQueued > 0 && q.running >= q.slots && len(q.waiting) >= q.maxQueued
}

// Waiting returns the number of builds waiting for a slot.
func (q *Queue) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// Acquire waits for a slot, calling report with the number of builds ahead whenever
// it has to wait or that number changes. It returns the function that gives the slot
// back, ctx's error if the client left first (its place in the queue is given up), or
// a *QueueFullError without waiting when the queue is bounded and full.
func (q *Queue) Acquire(ctx context.Context, report func(string)) (release func(), err error) {
	start := time.Now()
	if err := q.slot(ctx, report); err != nil {
		return nil, err
	}
	q.observe.QueueWaited(time.Since(start))
	var once sync.Once
	return func() { once.Do(q.handOver) }, nil
}

// slot waits for an in-process slot.
func (q *Queue) slot(ctx context.Context, report func(string)) error {
	q.mu.Lock()
	if q.draining {
		q.mu.Unlock()
		return &DrainingError{}
	}
	if q.running < q.slots && len(q.waiting) == 0 {
		q.running++
		q.mu.Unlock()
		return nil
	}
	if q.fullLocked() {
		q.mu.Unlock()
		return &QueueFullError{Max: q.maxQueued}
	}
	w := &waiter{granted: make(chan struct{}), moved: make(chan struct{}, 1)}
	q.waiting = append(q.waiting, w)
	ahead := q.running + len(q.waiting) - 1
	q.mu.Unlock()
	report(waitingLine(ahead))
	for {
		select {
		case <-w.granted:
			return nil
		case <-w.moved:
			q.mu.Lock()
			i := slices.Index(q.waiting, w)
			if q.draining && i >= 0 {
				q.waiting = slices.Delete(q.waiting, i, i+1)
				q.notifyLocked()
				q.mu.Unlock()
				return &DrainingError{}
			}
			now := q.running + i
			q.mu.Unlock()
			if i >= 0 && now != ahead {
				ahead = now
				report(waitingLine(ahead))
			}
		case <-ctx.Done():
			q.mu.Lock()
			i := slices.Index(q.waiting, w)
			if i >= 0 {
				q.waiting = slices.Delete(q.waiting, i, i+1)
				q.notifyLocked()
				q.mu.Unlock()
				return ctx.Err()
			}
			q.mu.Unlock()
			// The slot was handed over as the client left: pass it on.
			q.handOver()
			return ctx.Err()
		}
	}
}

// handOver gives a finished build's slot to the first waiter, or frees it.
func (q *Queue) handOver() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		q.running--
		if q.running == 0 && q.idle != nil {
			go q.idle()
		}
		return
	}
	next := q.waiting[0]
	q.waiting = q.waiting[1:]
	close(next.granted)
	q.notifyLocked()
}

// notifyLocked tells every waiter its position may have changed.
func (q *Queue) notifyLocked() {
	for _, w := range q.waiting {
		select {
		case w.moved <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

func waitingLine(ahead int) string {
	return fmt.Sprintf("Waiting for the build slot: %d build(s) ahead", ahead)
}
