package builder

import (
	"context"
	"errors"
	"time"
)

// DrainingError is the Queue's refusal once the server drains (Drain): running
// builds finish, new ones go to another server. Front doors answer it as they answer
// a full queue: HTTP 503, gRPC Unavailable.
type DrainingError struct{}

// Error says why the build was refused and what to do.
func (*DrainingError) Error() string {
	return "the kiln server is shutting down and accepts no new builds; try again on another server or after it restarts"
}

// IsDraining reports whether err is, or wraps, a *DrainingError.
func IsDraining(err error) bool {
	var de *DrainingError
	return errors.As(err, &de)
}

// Drain makes the queue refuse every build that has no slot yet, the waiting ones
// included, with a *DrainingError; builds that hold a slot go on. It cannot be
// undone: a draining server is about to stop.
func (q *Queue) Drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.draining = true
	// Waiting builds are told their position changed; they see draining and leave.
	q.notifyLocked()
}

// Draining reports whether Drain was called.
func (q *Queue) Draining() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.draining
}

// Running returns the number of builds that hold a slot.
func (q *Queue) Running() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

// WaitIdle waits until no build holds a slot or waits for one, polling every tick,
// and returns ctx's error if ctx ends first.
func (q *Queue) WaitIdle(ctx context.Context, tick time.Duration) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		q.mu.Lock()
		idle := q.running == 0 && len(q.waiting) == 0
		q.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
