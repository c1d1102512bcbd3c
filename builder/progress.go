package builder

import (
	"io"
	"time"
)

// Progress reports a base-image layer's download as it goes, for a door that draws
// progress bars (kiln build on a terminal). It is sent from the download's goroutine
// (a few layers download at once), at most every progressEvery per layer, and once
// when the layer is complete (Current == Total).
type Progress struct {
	// ID is the layer's digest, abbreviated as docker pull shows it (12 hex digits).
	ID string
	// Action is what is happening: "Downloading".
	Action string
	// Current is the bytes done, Total the layer's size (0 when unknown).
	Current, Total int64
}

func (Progress) event() {}

// progressEvery spaces a layer's Progress events.
const progressEvery = 100 * time.Millisecond

// progressReader sends Progress events for the bytes read through it.
type progressReader struct {
	r     io.Reader
	emit  func(Event)
	ev    Progress
	last  time.Time
	ended bool
}

// newProgressReader returns r reporting its reads of a layer of total bytes as
// action on id (a digest's hex) to emit.
func newProgressReader(r io.Reader, emit func(Event), action, hex string, total int64) *progressReader {
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return &progressReader{r: r, emit: emit, ev: Progress{ID: hex, Action: action, Total: total}}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.ev.Current += int64(n)
	now := time.Now()
	complete := err == io.EOF || (p.ev.Total > 0 && p.ev.Current >= p.ev.Total)
	switch {
	case complete && !p.ended:
		p.ended = true
		p.emit(p.ev)
	case !complete && now.Sub(p.last) >= progressEvery:
		p.last = now
		p.emit(p.ev)
	}
	return n, err
}
