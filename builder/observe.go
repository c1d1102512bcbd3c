package builder

import (
	"strings"
	"time"
)

// Observer is told what builds do, for a server's metrics. The engine calls it from
// Build and the Queue, so every front door's builds are counted the same way; a door
// that receives a build context reports its size itself (ContextReceived). Methods
// are called from build goroutines, concurrently, and must not block.
type Observer interface {
	// BuildStarted is called when Build begins; BuildFinished when it returns, with
	// how the build ended and how long it took.
	BuildStarted()
	BuildFinished(c Classification, d time.Duration)
	// StepFinished is called after each instruction with its keyword ("run", "copy")
	// and how long it took, whether it ran or came from the cache.
	StepFinished(instruction string, d time.Duration)
	// CacheLookup is called for each lookup in a cache: kind "step" (the step cache),
	// "step-shared" (its registry level, after a local miss) or "base-layer" (the
	// base-image cache), and whether it was a hit.
	CacheLookup(kind string, hit bool)
	// Transferred counts bytes moved: direction "pulled" (base layers from a
	// registry), "pushed" (to a registry) or "context" (build contexts received).
	Transferred(direction string, n int64)
	// QueueWaited is called when a build got its slot, with how long it waited.
	QueueWaited(d time.Duration)
}

// Transfer directions for Observer.Transferred.
const (
	TransferPulled  = "pulled"
	TransferPushed  = "pushed"
	TransferContext = "context"
)

// Cache kinds for Observer.CacheLookup.
const (
	CacheKindStep      = "step"
	CacheKindBaseLayer = "base-layer"
	// CacheKindShared: the step cache's second level, a registry shared by a fleet
	// (Workspace.SharedCache), asked after a local miss.
	CacheKindShared = "step-shared"
)

// nopObserver is the Observer of a workspace that has none.
type nopObserver struct{}

func (nopObserver) BuildStarted()                               {}
func (nopObserver) BuildFinished(Classification, time.Duration) {}
func (nopObserver) StepFinished(string, time.Duration)          {}
func (nopObserver) CacheLookup(string, bool)                    {}
func (nopObserver) Transferred(string, int64)                   {}
func (nopObserver) QueueWaited(time.Duration)                   {}

// observerOf returns o, or an Observer that does nothing when o is nil.
func observerOf(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

// observeEvents returns emit with the step and cache events also told to o: step
// durations run from one StepStarted to the next StepDone.
func observeEvents(o Observer, emit func(Event)) func(Event) {
	var (
		started time.Time
		keyword string
	)
	return func(e Event) {
		switch e := e.(type) {
		case StepStarted:
			started = time.Now()
			keyword, _, _ = strings.Cut(strings.TrimSpace(e.Text), " ")
			keyword = strings.ToLower(keyword)
		case StepDone:
			if !started.IsZero() {
				o.StepFinished(keyword, time.Since(started))
				started = time.Time{}
			}
		case CacheHit:
			o.CacheLookup(CacheKindStep, true)
		case CacheMiss:
			o.CacheLookup(CacheKindStep, false)
		case PhaseTimes:
			if po, ok := o.(PhaseObserver); ok {
				for _, ph := range AllPhases() {
					po.PhaseFinished(ph.String(), e.Of(ph))
				}
			}
		}
		emit(e)
	}
}
