package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/builder"
)

// reportEvents are a build's events as the builder sends them: a FROM, a hit, a miss,
// then a failure in step 4.
var reportEvents = []builder.Event{
	builder.StepStarted{Step: 1, Total: 5, Stage: "0", Line: 1, Text: "FROM busybox"},
	builder.Info{Message: "Pulling busybox"},
	builder.StepDone{Step: 1},
	builder.StepStarted{Step: 2, Total: 5, Stage: "0", Line: 2, Text: "COPY . /src"},
	builder.CacheHit{Step: 2, Text: "COPY . /src"},
	builder.StepDone{Step: 2},
	builder.StepStarted{Step: 3, Total: 5, Stage: "0", Line: 3, Text: "RUN make"},
	builder.CacheMiss{Step: 3, Text: "RUN make", Reason: "build arg V changed"},
	builder.StepDone{Step: 3},
	builder.StepStarted{Step: 4, Total: 5, Stage: "0", Line: 4, Text: "RUN make test"},
	builder.CacheMiss{Step: 4, Text: "RUN make test", Reason: "step 3 (RUN make) ran again and changed the image"},
}

func TestCacheReport(t *testing.T) {
	t.Parallel()
	var passed []builder.Event
	r := &cacheReport{}
	tee := r.tee(func(e builder.Event) { passed = append(passed, e) })
	for _, e := range reportEvents {
		tee(e)
	}
	if len(passed) != len(reportEvents) {
		t.Errorf("the report passed on %d events of %d", len(passed), len(reportEvents))
	}
	r.finish(errors.New("Dockerfile:4: RUN make test: exit code 2"))

	dir := t.TempDir()
	if err := r.write(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	got := readReport(t, filepath.Join(dir, "report.json"))
	want := cacheReport{
		Steps: []reportStep{
			{Step: 1, Total: 5, Stage: "0", Line: 1, Instruction: "FROM busybox", Result: "none"},
			{Step: 2, Total: 5, Stage: "0", Line: 2, Instruction: "COPY . /src", Result: "hit"},
			{Step: 3, Total: 5, Stage: "0", Line: 3, Instruction: "RUN make", Result: "miss", Reason: "build arg V changed"},
			{Step: 4, Total: 5, Stage: "0", Line: 4, Instruction: "RUN make test", Result: "miss", Reason: "step 3 (RUN make) ran again and changed the image"},
		},
		Hits: 1, Misses: 2,
		Error: "Dockerfile:4: RUN make test: exit code 2", FailedStep: 4,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON report (-want +got):\n%s", diff)
	}

	if err := r.write(filepath.Join(dir, "report.txt")); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "report.txt"))
	wantText := `Step 1/5 : FROM busybox: not cached
Step 2/5 : COPY . /src: hit
Step 3/5 : RUN make: miss (build arg V changed)
Step 4/5 : RUN make test: miss (step 3 (RUN make) ran again and changed the image)
1 hits, 2 misses
The build failed at step 4: Dockerfile:4: RUN make test: exit code 2
`
	if diff := cmp.Diff(wantText, string(text)); diff != "" {
		t.Errorf("text report (-want +got):\n%s", diff)
	}
}

func TestCacheReportWriteFails(t *testing.T) {
	t.Parallel()
	r := &cacheReport{}
	if err := r.write(filepath.Join(t.TempDir(), "missing", "report.json")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
