package builder

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A Phase is one kind of work a build spends its wall time on, for the breakdown a
// build reports at its end (PhaseTimes): where the time went, without a profiler.
type Phase int

// The phases, in the order the breakdown lists them. They are disjoint: a step is
// timed in one phase only, and a phase timed inside another (a base layer extracted by
// a COPY, compression inside export) is taken out of the outer one (Phases.Exclusive).
const (
	// PhaseContext is obtaining the build context: fetching or unpacking it (kiln
	// build's remote contexts), receiving it (/build's body, the BuildKit session).
	// Doors that do it before Build record it themselves (Request.Phases).
	PhaseContext Phase = iota
	// PhaseBase is pulling base images and filling stage roots with them: mounting the
	// extracted-base cache, extracting layers (the base's, or cached steps' when a root
	// catches up).
	PhaseBase
	// PhaseRun is RUN processes, from start to exit (namespace setup included).
	PhaseRun
	// PhaseSnapshot is walking a root: recording its files before the first step that
	// changes it, and finding what a RUN changed.
	PhaseSnapshot
	// PhaseLayer is writing layer tars (compression included where it happens there).
	PhaseLayer
	// PhaseCompress is compressing layers where it is a step of its own.
	PhaseCompress
	// PhaseCopy is COPY and ADD, less the phases above they contain.
	PhaseCopy
	// PhaseCache is the step cache: computing steps' keys (hashing the files a COPY
	// reads), looking them up and storing what ran.
	PhaseCache
	// PhaseExport is writing the outputs: the image store, tarballs, OCI layouts,
	// pushes. Doors write outputs after Build returns and record it themselves.
	PhaseExport

	numPhases
)

// String is the phase's name in the breakdown line and in metrics ("run", "layer").
func (p Phase) String() string {
	switch p {
	case PhaseContext:
		return "context"
	case PhaseBase:
		return "base"
	case PhaseRun:
		return "run"
	case PhaseSnapshot:
		return "snapshot"
	case PhaseLayer:
		return "layer"
	case PhaseCompress:
		return "compress"
	case PhaseCopy:
		return "copy"
	case PhaseCache:
		return "cache"
	case PhaseExport:
		return "export"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// AllPhases lists every phase in breakdown order.
func AllPhases() []Phase {
	ps := make([]Phase, numPhases)
	for i := range ps {
		ps[i] = Phase(i)
	}
	return ps
}

// Phases accumulates one build's time per phase. It is cheap (one clock read at each
// end of a timed step, never per file) and safe for concurrent use. A nil *Phases
// records nothing, so code paths need not check. Make one with NewPhases: its wall
// clock starts then.
type Phases struct {
	start time.Time
	d     [numPhases]atomic.Int64
}

// NewPhases returns an empty accumulator whose wall time starts now. A door that does
// work for the build before calling Build (receiving the context) makes it first and
// passes it in Request.Phases.
func NewPhases() *Phases { return &Phases{start: time.Now()} }

// Add adds d to phase ph.
func (p *Phases) Add(ph Phase, d time.Duration) {
	if p == nil || ph < 0 || ph >= numPhases {
		return
	}
	p.d[ph].Add(int64(d))
}

// Since adds the time since start to phase ph: `defer p.Since(PhaseRun, time.Now())`.
func (p *Phases) Since(ph Phase, start time.Time) { p.Add(ph, time.Since(start)) }

// Time runs fn and adds its duration to phase ph: the one-line way to time a step,
// e.g. `err := phases.Time(builder.PhaseCompress, func() error { return compress() })`.
func (p *Phases) Time(ph Phase, fn func() error) error {
	start := time.Now()
	err := fn()
	p.Since(ph, start)
	return err
}

// Exclusive runs fn and adds its duration to phase ph less what other phases gained
// meanwhile, so a step that contains timed steps is not counted twice. Meant for
// steps that run one at a time within a build (a build's stages do); should
// concurrent work make the difference negative, ph gets nothing.
func (p *Phases) Exclusive(ph Phase, fn func() error) error {
	if p == nil {
		return fn()
	}
	before := p.total()
	start := time.Now()
	err := fn()
	own := time.Since(start) - (p.total() - before)
	if own > 0 {
		p.Add(ph, own)
	}
	return err
}

// total is the sum of all phases so far.
func (p *Phases) total() time.Duration {
	var sum time.Duration
	for i := range p.d {
		sum += time.Duration(p.d[i].Load())
	}
	return sum
}

// Times returns the breakdown as it stands, its wall time running from NewPhases
// until now.
func (p *Phases) Times() PhaseTimes {
	var t PhaseTimes
	if p == nil {
		return t
	}
	t.Wall = time.Since(p.start)
	for i := range p.d {
		t.Times[i] = time.Duration(p.d[i].Load())
	}
	return t
}

// PhaseTimes is a build's breakdown: its wall time and the time of each phase. Build
// sends it once, as its last event (before the door writes the outputs: Export is
// then still 0, and the door adds it from its Request.Phases).
type PhaseTimes struct {
	Wall  time.Duration
	Times [numPhases]time.Duration
}

func (PhaseTimes) event() {}

// Of is the time of one phase.
func (t PhaseTimes) Of(ph Phase) time.Duration {
	if ph < 0 || ph >= numPhases {
		return 0
	}
	return t.Times[ph]
}

// Other is the wall time no phase accounts for (parsing, cache lookups, image configs,
// waiting), never negative.
func (t PhaseTimes) Other() time.Duration {
	o := t.Wall
	for _, d := range t.Times {
		o -= d
	}
	return max(o, 0)
}

// PhaseLinePrefix starts the breakdown line (String); scripts/bench looks for it.
const PhaseLinePrefix = "Phases:"

// String is the one-line breakdown, seconds with millisecond precision, every phase
// always present, in order:
//
//	Phases: wall=1.532s context=0.000s base=0.120s run=0.800s snapshot=0.100s layer=0.200s compress=0.000s copy=0.000s cache=0.000s export=0.000s other=0.312s
func (t PhaseTimes) String() string {
	var sb strings.Builder
	sb.WriteString(PhaseLinePrefix)
	field := func(k string, d time.Duration) { fmt.Fprintf(&sb, " %s=%.3fs", k, d.Seconds()) }
	field("wall", t.Wall)
	for i, d := range t.Times {
		field(Phase(i).String(), d)
	}
	field("other", t.Other())
	return sb.String()
}

// Fields are the breakdown as log fields, seconds: "phase_run": 0.8 and so on, with
// "phase_wall" and "phase_other".
func (t PhaseTimes) Fields() map[string]any {
	f := map[string]any{"phase_wall": roundMs(t.Wall), "phase_other": roundMs(t.Other())}
	for i, d := range t.Times {
		f["phase_"+Phase(i).String()] = roundMs(d)
	}
	return f
}

// roundMs is d in seconds, to the millisecond.
func roundMs(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// PhaseObserver is an Observer that also wants each finished build's breakdown (a
// server's kiln_build_phase_seconds histogram). Build calls PhaseFinished once per
// phase with the engine's part of the breakdown (the door's export comes after).
type PhaseObserver interface {
	PhaseFinished(phase string, d time.Duration)
}
