package nettimeout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Watchdog holds a fetch whose connections kiln cannot wrap (go-git's git://
// transport dials for itself) to the stall limit: the fetch reports progress (bytes
// written, progress messages), and the context Watch returned is cancelled with an
// *Error when none has come for the stall limit. A Watchdog is an io.Writer whose
// writes count as progress, for progress streams.
type Watchdog struct {
	last   atomic.Int64 // UnixNano of the last progress
	cancel context.CancelCauseFunc
	stop   chan struct{}
	once   sync.Once
}

// Watch returns a context cancelled when ctx is, or when the returned Watchdog hears
// no progress for the stall limit (its cause is then an *Error naming host). Stop
// the Watchdog when the fetch ends.
func (l Limits) Watch(ctx context.Context, host string) (context.Context, *Watchdog) {
	wctx, cancel := context.WithCancelCause(ctx)
	w := &Watchdog{cancel: cancel, stop: make(chan struct{})}
	w.Progress()
	stall := l.StallTimeout()
	go func() {
		t := time.NewTimer(stall)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-wctx.Done():
				return
			case <-t.C:
				idle := time.Since(time.Unix(0, w.last.Load()))
				if idle >= stall {
					cancel(&Error{Host: host, Limit: stall})
					return
				}
				t.Reset(stall - idle)
			}
		}
	}()
	return wctx, w
}

// Progress records that the fetch moved.
func (w *Watchdog) Progress() {
	w.last.Store(time.Now().UnixNano())
}

// Write records progress; it never fails.
func (w *Watchdog) Write(p []byte) (int, error) {
	w.Progress()
	return len(p), nil
}

// Stop ends the watch and releases the context.
func (w *Watchdog) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.cancel(context.Canceled)
	})
}
