package main

import (
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
)

// newLogger returns the logger for --verbosity, --log-format and --log-timestamp,
// writing to w. The formats are kaniko's: text is logrus's key=value format, color its
// coloured terminal format, json one object per line.
func newLogger(w io.Writer, level, format string, timestamps bool) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--verbosity %q: want panic, fatal, error, warn, info, debug or trace", level)
	}
	log := logrus.New()
	log.SetOutput(w)
	log.SetLevel(lvl)
	switch format {
	case "text":
		// key=value lines for machines; time only when asked for.
		log.SetFormatter(&logrus.TextFormatter{DisableColors: true, DisableTimestamp: !timestamps, FullTimestamp: true})
	case "color":
		// "INFO[0003] Step 3/7 : RUN make", the seconds since start as kaniko shows
		// them, or the full time with --log-timestamp.
		log.SetFormatter(&logrus.TextFormatter{ForceColors: true, FullTimestamp: timestamps})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{DisableTimestamp: !timestamps})
	default:
		return nil, fmt.Errorf("--log-format %q: want text, color or json", format)
	}
	return log, nil
}

// renderer shows build events on a terminal: progress as log lines on the logger, and
// RUN output as it is, on kiln's own stdout and stderr, so a build log reads like the
// commands' output with kiln's lines between them.
type renderer struct {
	log            *logrus.Logger
	stdout, stderr io.Writer
	// bars shows download progress; nil shows none.
	bars *progressBars
}

// event renders one event. The builder calls it in order from one goroutine.
func (r *renderer) event(e builder.Event) {
	if p, ok := e.(builder.Progress); ok {
		r.bars.update(p.ID, p.Action, p.Current, p.Total)
		return
	}
	r.bars.reset() // what follows scrolls the bars away
	switch e := e.(type) {
	case builder.StepStarted:
		r.log.Infof("Step %d/%d : %s", e.Step, e.Total, e.Text)
	case builder.Output:
		w := r.stdout
		if e.Stderr {
			w = r.stderr
		}
		// A terminal that went away must not fail the build; the log is best effort.
		_, _ = w.Write(e.Data)
	case builder.Running:
		r.log.Debugf(" ---> Running in %s", e.ID)
	case builder.CacheHit:
		r.log.Infof("Using caching version of cmd: %s", e.Text)
	case builder.CacheMiss:
		r.log.Debugf("No cached layer found for cmd %s: %s", e.Text, e.Reason)
	case builder.LayerWritten:
		r.log.Debugf("Layer %s: %d files, %d bytes", e.Digest, e.Files, e.Size)
	case builder.StepDone:
		r.log.Debugf(" ---> %s", shortID(e.ImageID.Hex))
	case builder.Info:
		r.log.Info(e.Message)
	case builder.Warning:
		r.log.Warn(e.Message)
	case builder.Debug:
		r.log.Debug(e.Message)
	case builder.PhaseTimes:
		// Logged by runBuild once the outputs are written, export time included.
	default:
		r.log.Tracef("event %#v", e)
	}
}

// shortID abbreviates an image ID the way docker build prints it.
func shortID(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}
