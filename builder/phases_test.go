package builder_test

import (
	"errors"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/builder"
)

// phaseTimesOf returns the build's breakdown event, failing unless there is exactly
// one and it is the last event.
func phaseTimesOf(t *testing.T, events []builder.Event) builder.PhaseTimes {
	t.Helper()
	var found []int
	for i, e := range events {
		if _, ok := e.(builder.PhaseTimes); ok {
			found = append(found, i)
		}
	}
	if len(found) != 1 || found[0] != len(events)-1 {
		t.Fatalf("PhaseTimes events at %v of %d, want one, last", found, len(events))
	}
	return events[len(events)-1].(builder.PhaseTimes)
}

// checkSum fails unless the phases sum to at most the wall time and Other is the rest.
func checkSum(t *testing.T, pt builder.PhaseTimes) {
	t.Helper()
	var sum time.Duration
	for _, ph := range builder.AllPhases() {
		if pt.Of(ph) < 0 {
			t.Errorf("%s = %v, negative", ph, pt.Of(ph))
		}
		sum += pt.Of(ph)
	}
	if sum > pt.Wall {
		t.Errorf("phases sum to %v, more than the wall time %v: %s", sum, pt.Wall, pt)
	}
	if sum+pt.Other() != pt.Wall {
		t.Errorf("phases %v + other %v != wall %v", sum, pt.Other(), pt.Wall)
	}
}

func TestBuildPhases(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		name       string
		dockerfile string
		files      map[string]string
		nonZero    []builder.Phase
		zero       []builder.Phase
		cache      bool // a local step cache
	}{
		{
			name: "run",
			dockerfile: `FROM BUSYBOX
RUN mkdir /many && for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > /many/$i; done
`,
			nonZero: []builder.Phase{builder.PhaseBase, builder.PhaseRun, builder.PhaseSnapshot, builder.PhaseLayer},
			zero:    []builder.Phase{builder.PhaseCopy, builder.PhaseExport, builder.PhaseCompress, builder.PhaseContext, builder.PhaseCache},
		},
		{
			name:       "cached",
			dockerfile: "FROM BUSYBOX\nCOPY a.txt /a.txt\nRUN echo x > /x\n",
			files:      map[string]string{"a.txt": "a"},
			cache:      true,
			nonZero:    []builder.Phase{builder.PhaseCache, builder.PhaseCopy, builder.PhaseRun, builder.PhaseLayer},
		},
		{
			name:       "copy",
			dockerfile: "FROM BUSYBOX\nCOPY a.txt /a.txt\n",
			files:      map[string]string{"a.txt": "a"},
			nonZero:    []builder.Phase{builder.PhaseBase, builder.PhaseCopy, builder.PhaseLayer},
			zero:       []builder.Phase{builder.PhaseRun, builder.PhaseExport},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bc := buildCase{dockerfile: c.dockerfile, files: c.files}
			if c.cache {
				bc.workspace = func(ws *builder.Workspace) {
					lc, err := builder.NewLocalCache(t.TempDir())
					if err != nil {
						t.Fatal(err)
					}
					ws.Cache = lc
				}
			}
			_, events := mustBuild(t, w, bc)
			pt := phaseTimesOf(t, events)
			for _, ph := range c.nonZero {
				if pt.Of(ph) <= 0 {
					t.Errorf("%s = 0, want time spent: %s", ph, pt)
				}
			}
			for _, ph := range c.zero {
				if pt.Of(ph) != 0 {
					t.Errorf("%s = %v, want 0: %s", ph, pt.Of(ph), pt)
				}
			}
			checkSum(t, pt)
		})
	}
}

// A door's own Phases (Request.Phases) keeps what the door recorded before Build and
// receives the engine's phases; the event carries both.
func TestBuildPhasesFromDoor(t *testing.T) {
	w := newWorld(t)
	ph := builder.NewPhases()
	ph.Add(builder.PhaseContext, time.Millisecond)
	_, events := mustBuild(t, w, buildCase{dockerfile: "FROM BUSYBOX\nRUN echo x > /x\n", phases: ph})
	pt := phaseTimesOf(t, events)
	if pt.Of(builder.PhaseContext) != time.Millisecond || pt.Of(builder.PhaseRun) <= 0 {
		t.Errorf("event %s, want context=0.001s and a run time", pt)
	}
	after := ph.Times()
	if after.Of(builder.PhaseRun) != pt.Of(builder.PhaseRun) || after.Wall < pt.Wall {
		t.Errorf("door's Phases %s, event %s: want the same run time, a later wall", after, pt)
	}
}

// A failed build still reports its breakdown.
func TestBuildPhasesFailedBuild(t *testing.T) {
	w := newWorld(t)
	_, events, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\nRUN exit 3\n"})
	if err == nil {
		t.Fatal("RUN exit 3 succeeded")
	}
	if pt := phaseTimesOf(t, events); pt.Of(builder.PhaseRun) <= 0 {
		t.Errorf("failed build's breakdown %s has no run time", pt)
	}
}

func TestPhasesExclusive(t *testing.T) {
	p := builder.NewPhases()
	want := errors.New("boom")
	err := p.Exclusive(builder.PhaseExport, func() error {
		time.Sleep(20 * time.Millisecond)
		p.Add(builder.PhaseCompress, 15*time.Millisecond) // as if timed inside
		return want
	})
	if err != want {
		t.Errorf("Exclusive returned %v, want fn's error", err)
	}
	pt := p.Times()
	if got := pt.Of(builder.PhaseExport); got < 5*time.Millisecond || got >= 20*time.Millisecond {
		t.Errorf("export = %v, want its 20ms+ less compress's 15ms", got)
	}
	// Nested time larger than the step itself (concurrent work): the step gets none.
	p.Exclusive(builder.PhaseCopy, func() error { p.Add(builder.PhaseLayer, time.Hour); return nil })
	if got := p.Times().Of(builder.PhaseCopy); got != 0 {
		t.Errorf("copy = %v, want 0", got)
	}
}

func TestPhasesNilAndConcurrent(t *testing.T) {
	var nilP *builder.Phases
	nilP.Add(builder.PhaseRun, time.Second)
	if err := nilP.Time(builder.PhaseRun, func() error { return nil }); err != nil {
		t.Error(err)
	}
	if pt := nilP.Times(); pt != (builder.PhaseTimes{}) {
		t.Errorf("nil Phases reported %s", pt)
	}
	p := builder.NewPhases()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				p.Add(builder.PhaseRun, time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if got := p.Times().Of(builder.PhaseRun); got != 8*time.Millisecond {
		t.Errorf("run = %v after 8000 concurrent µs, want 8ms", got)
	}
}

// The line's format is what scripts/bench.d/phases.awk reads (TestPhaseLineBench in
// cmd/kiln runs it): "Phases:" and key=seconds fields, every phase, then other.
func TestPhaseTimesString(t *testing.T) {
	var pt builder.PhaseTimes
	pt.Wall = 2 * time.Second
	pt.Times[builder.PhaseRun] = 1234 * time.Millisecond
	pt.Times[builder.PhaseLayer] = 500 * time.Millisecond
	got := pt.String()
	want := "Phases: wall=2.000s context=0.000s base=0.000s run=1.234s snapshot=0.000s layer=0.500s compress=0.000s copy=0.000s cache=0.000s export=0.000s other=0.266s"
	if got != want {
		t.Errorf("String() =\n %s\nwant\n %s", got, want)
	}
	f := pt.Fields()
	if f["phase_run"] != 1.234 || f["phase_other"] != 0.266 || len(f) != len(builder.AllPhases())+2 {
		t.Errorf("Fields() = %v", f)
	}
	re := regexp.MustCompile(` ([a-z]+)=([0-9.]+)s`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(got, -1) {
		if m[1] == "wall" {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
	}
	if sum < 1.999 || sum > 2.001 {
		t.Errorf("fields sum to %v, want the wall time", sum)
	}
}
