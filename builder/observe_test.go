package builder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

// recordingObserver records what Build tells its Observer.
type recordingObserver struct {
	nopObserver
	mu       sync.Mutex
	started  int
	finished []Classification
	steps    []string
	lookups  map[string][2]int // kind -> hits, misses
}

func (o *recordingObserver) BuildStarted() { o.mu.Lock(); o.started++; o.mu.Unlock() }
func (o *recordingObserver) BuildFinished(c Classification, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished = append(o.finished, c)
}
func (o *recordingObserver) StepFinished(instruction string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.steps = append(o.steps, instruction)
}
func (o *recordingObserver) CacheLookup(kind string, hit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lookups == nil {
		o.lookups = map[string][2]int{}
	}
	n := o.lookups[kind]
	if hit {
		n[0]++
	} else {
		n[1]++
	}
	o.lookups[kind] = n
}

// TestBuildObserver: Build tells the workspace's Observer that a build started and
// how it ended, classified: a Dockerfile the parser rejects is the user's error.
func TestBuildObserver(t *testing.T) {
	t.Parallel()
	c, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	obs := &recordingObserver{}
	ws := Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), Observer: obs}
	_, err = Build(context.Background(), &Request{Dockerfile: []byte("FROM scratch\nNOSUCH x\n"), Context: c}, WithWorkspace(ws))
	if err == nil {
		t.Fatal("a Dockerfile with an unknown instruction built")
	}
	if obs.started != 1 || len(obs.finished) != 1 || obs.finished[0].Class != ClassUser {
		t.Errorf("started %d, finished %+v; want 1 and one user_error", obs.started, obs.finished)
	}
}

// TestObserveEvents: step durations are reported per instruction keyword, and cache
// events count as step-cache lookups, while every event still reaches the door.
func TestObserveEvents(t *testing.T) {
	t.Parallel()
	obs := &recordingObserver{}
	var passed int
	emit := observeEvents(obs, func(Event) { passed++ })
	for _, e := range []Event{
		StepStarted{Step: 1, Text: "FROM busybox"}, StepDone{Step: 1},
		StepStarted{Step: 2, Text: "RUN echo hi"}, CacheHit{Step: 2}, StepDone{Step: 2},
		StepStarted{Step: 3, Text: "copy . /x"}, CacheMiss{Step: 3}, StepDone{Step: 3},
	} {
		emit(e)
	}
	if passed != 8 {
		t.Errorf("%d events reached the door, want 8", passed)
	}
	if want := []string{"from", "run", "copy"}; len(obs.steps) != 3 || obs.steps[0] != want[0] || obs.steps[1] != want[1] || obs.steps[2] != want[2] {
		t.Errorf("steps %v, want %v", obs.steps, want)
	}
	if got := obs.lookups[CacheKindStep]; got != [2]int{1, 1} {
		t.Errorf("step cache hits, misses = %v, want [1 1]", got)
	}
}

// phaseObserver is a recordingObserver that is also a PhaseObserver.
type phaseObserver struct {
	recordingObserver
	phases map[string]time.Duration
}

func (o *phaseObserver) PhaseFinished(phase string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.phases == nil {
		o.phases = map[string]time.Duration{}
	}
	o.phases[phase] += d
}

// A build's breakdown reaches an Observer that is a PhaseObserver, one call per phase;
// a plain Observer just does not get it.
func TestObservePhases(t *testing.T) {
	t.Parallel()
	var pt PhaseTimes
	pt.Wall = 3 * time.Second
	pt.Times[PhaseRun] = 2 * time.Second
	pt.Times[PhaseLayer] = 500 * time.Millisecond
	obs := &phaseObserver{}
	var passed int
	observeEvents(obs, func(Event) { passed++ })(pt)
	if passed != 1 {
		t.Errorf("%d events reached the door, want 1", passed)
	}
	if len(obs.phases) != len(AllPhases()) || obs.phases["run"] != 2*time.Second || obs.phases["layer"] != 500*time.Millisecond || obs.phases["copy"] != 0 {
		t.Errorf("phases observed: %v", obs.phases)
	}
	observeEvents(&recordingObserver{}, func(Event) {})(pt) // no PhaseObserver: nothing to call
}
