package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/docker/go-units"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// progressBars shows kiln build's layer transfers (base-layer downloads, pushes). On
// a terminal it draws a bar per transfer and redraws it in place as docker pull does;
// elsewhere, and with --log-format json, it logs one line when a transfer is
// complete, so CI logs and machines get no escape sequences. Transfers report from
// several goroutines at once.
type progressBars struct {
	mu    sync.Mutex
	w     io.Writer
	log   *logrus.Logger
	tty   bool
	width int
	// ids are the transfers whose bars are on screen, top first; the cursor stands
	// at the start of the line below the last.
	ids []string
}

// newProgressBars returns the progress renderer for w: bars when w is a terminal
// and format is not json.
func newProgressBars(w io.Writer, format string, log *logrus.Logger) *progressBars {
	p := &progressBars{w: w, log: log, width: 80}
	if f, ok := w.(*os.File); ok && format != "json" {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.tty = true
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 20 {
				p.width = int(ws.Col)
			}
		}
	}
	return p
}

// update shows a transfer's progress: id (a layer or a reference), what is done
// ("Downloading", "Pushing"), bytes done and total.
func (p *progressBars) update(id, action string, current, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	complete := total > 0 && current >= total
	if !p.tty {
		if complete {
			p.log.Infof("%s: %s (%s)", id, doneText(action), units.HumanSize(float64(total)))
		}
		return
	}
	line := p.line(id, action, current, total)
	i := slices.Index(p.ids, id)
	if i < 0 {
		p.ids = append(p.ids, id)
		fmt.Fprintf(p.w, "\r\x1b[2K%s\n", line)
		return
	}
	// Up to the bar's line, rewrite it, and back down below the last bar.
	up := len(p.ids) - i
	fmt.Fprintf(p.w, "\x1b[%dA\r\x1b[2K%s\x1b[%dB\r", up, line, up)
}

// line is one transfer's bar: "3f4b1c2d5e6a: Downloading [=====>     ] 1.2MB/4.5MB".
func (p *progressBars) line(id, action string, current, total int64) string {
	if total <= 0 {
		return fmt.Sprintf("%s: %s %s", id, action, units.HumanSize(float64(current)))
	}
	if current >= total {
		return fmt.Sprintf("%s: %s", id, doneText(action))
	}
	width := min(50, max(10, p.width-len(id)-len(action)-30))
	filled := int(int64(width) * current / total)
	bar := strings.Repeat("=", filled) + ">" + strings.Repeat(" ", max(0, width-filled-1))
	return fmt.Sprintf("%s: %s [%s] %s/%s", id, action, bar, units.HumanSize(float64(current)), units.HumanSize(float64(total)))
}

// reset forgets the bars on screen: other output is about to scroll them away, and
// a later update starts a new bar below it.
func (p *progressBars) reset() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.ids = nil
	p.mu.Unlock()
}

// doneText is what a complete transfer says, as docker pull and push say it.
func doneText(action string) string {
	switch action {
	case "Downloading":
		return "Download complete"
	case "Pushing":
		return "Pushed"
	}
	return action + " complete"
}
