package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
)

// Results of a step in the cache report.
const (
	resultHit  = "hit"
	resultMiss = "miss"
	// resultNone is a step the cache never saw: a FROM, or every step of a build
	// without a cache.
	resultNone = "none"
)

// cacheReport is --cache-report: what the cache did with each step, gathered from the
// build's events.
type cacheReport struct {
	Steps  []reportStep `json:"steps"`
	Hits   int          `json:"hits"`
	Misses int          `json:"misses"`
	// Error is why the build failed, with the step it failed at; empty on success.
	Error      string `json:"error,omitempty"`
	FailedStep int    `json:"failedStep,omitempty"`
}

// reportStep is one step of the report.
type reportStep struct {
	Step        int    `json:"step"`
	Total       int    `json:"total"`
	Stage       string `json:"stage"`
	Line        int    `json:"line"`
	Instruction string `json:"instruction"`
	Result      string `json:"result"` // hit, miss or none
	Reason      string `json:"reason,omitempty"`
}

// tee returns an event handler that records events in the report and passes them on
// to next. The builder calls it from one goroutine, so the report needs no lock.
func (r *cacheReport) tee(next func(builder.Event)) func(builder.Event) {
	return func(e builder.Event) {
		r.observe(e)
		next(e)
	}
}

// observe records one event.
func (r *cacheReport) observe(e builder.Event) {
	switch e := e.(type) {
	case builder.StepStarted:
		r.Steps = append(r.Steps, reportStep{Step: e.Step, Total: e.Total, Stage: e.Stage, Line: e.Line, Instruction: e.Text, Result: resultNone})
	case builder.CacheHit:
		if s := r.step(e.Step); s != nil {
			s.Result, s.Reason = resultHit, ""
		}
	case builder.CacheMiss:
		if s := r.step(e.Step); s != nil {
			s.Result, s.Reason = resultMiss, e.Reason
		}
	}
}

// step returns the record of step n, nil when it was never announced.
func (r *cacheReport) step(n int) *reportStep {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if r.Steps[i].Step == n {
			return &r.Steps[i]
		}
	}
	return nil
}

// finish counts the results and records the build's error, if any, against the last
// step that started.
func (r *cacheReport) finish(buildErr error) {
	r.Hits, r.Misses = 0, 0
	for _, s := range r.Steps {
		switch s.Result {
		case resultHit:
			r.Hits++
		case resultMiss:
			r.Misses++
		}
	}
	if buildErr != nil {
		r.Error = buildErr.Error()
		if n := len(r.Steps); n > 0 {
			r.FailedStep = r.Steps[n-1].Step
		}
	}
}

// write writes the report to path: text when the name ends in .txt, JSON otherwise.
func (r *cacheReport) write(path string) error {
	var data []byte
	if strings.HasSuffix(path, ".txt") {
		data = r.text()
	} else {
		var err error
		if data, err = json.MarshalIndent(r, "", "  "); err != nil {
			return fmt.Errorf("encoding the cache report: %w", err)
		}
		data = append(data, '\n')
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing the cache report: %w", err)
	}
	return nil
}

// text is the report for people: one line per step, as the build log numbers them.
func (r *cacheReport) text() []byte {
	var b bytes.Buffer
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "Step %d/%d : %s: ", s.Step, s.Total, s.Instruction)
		switch s.Result {
		case resultHit:
			b.WriteString("hit\n")
		case resultMiss:
			fmt.Fprintf(&b, "miss (%s)\n", s.Reason)
		default:
			b.WriteString("not cached\n")
		}
	}
	fmt.Fprintf(&b, "%d hits, %d misses\n", r.Hits, r.Misses)
	if r.Error != "" {
		fmt.Fprintf(&b, "The build failed at step %d: %s\n", r.FailedStep, r.Error)
	}
	return b.Bytes()
}

// finishCache ends a build's use of the cache, whatever its outcome: it waits for the
// cache's background pushes (before the state directory holding the layers goes) and
// writes --cache-report. It returns the build's error, or the report's when the build
// succeeded.
func finishCache(ctx context.Context, log *logrus.Logger, sc *stepCache, report *cacheReport, reportPath string, buildErr error) error {
	sc.finish(ctx, log.Warnf)
	if reportPath == "" {
		return buildErr
	}
	report.finish(buildErr)
	if err := report.write(reportPath); err != nil {
		if buildErr != nil {
			log.Warn(err)
			return buildErr
		}
		return err
	}
	return buildErr
}
