package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/builder"
)

// The "Phases:" line kiln build logs is what scripts/bench reads with
// scripts/bench.d/phases.awk, in every log format, at the level --phase-times picks.
func TestPhaseLineBench(t *testing.T) {
	if _, err := exec.LookPath("awk"); err != nil {
		t.Skip("no awk")
	}
	var pt builder.PhaseTimes
	pt.Wall = 1500 * time.Millisecond
	pt.Times[builder.PhaseRun] = 900 * time.Millisecond
	pt.Times[builder.PhaseLayer] = 250 * time.Millisecond
	pt.Times[builder.PhaseExport] = 100 * time.Millisecond
	want := "wall=1.500 context=0.000 base=0.000 run=0.900 snapshot=0.000 layer=0.250 compress=0.000 copy=0.000 cache=0.000 export=0.100 other=0.250"
	for _, c := range []struct {
		format, level string
		info          bool
		want          string
	}{
		{"color", "info", true, want},
		{"text", "info", true, want},
		{"json", "info", true, want},
		{"text", "debug", false, want},
		{"text", "info", false, ""}, // debug level, not shown
	} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, c.level, c.format, false)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("Built image sha256:0123")
		logPhases(log, pt, c.info)
		cmd := exec.Command("awk", "-f", "../../scripts/bench.d/phases.awk")
		cmd.Stdin = &buf
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("awk: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%s at %s (--phase-times %v): phases.awk read\n %q\nwant\n %q", c.format, c.level, c.info, got, c.want)
		}
	}
}
