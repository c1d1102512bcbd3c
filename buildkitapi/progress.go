package buildkitapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/builder"
)

// progress renders one build's events as SolveStatus messages the way BuildKit's
// progress reads: one vertex per phase ("[internal] load build context", "exporting
// to image") and per instruction ("[stage-1 2/5] RUN make"), completed or CACHED, with
// RUN output as the vertex's logs and transfers as its statuses.
type progress struct {
	publish func(*controlapi.StatusResponse)
	salt    string

	mu      sync.Mutex
	seq     int
	open    []*controlapi.Vertex // started and not completed, oldest first
	steps   map[int]*controlapi.Vertex
	last    string // the digest of the last step vertex, the next one's input
	current *controlapi.Vertex
	closed  bool
	// sentTransfer is when the last transfer status went out (transferEvery).
	sentTransfer time.Time
}

// transferEvery is how often a transfer's progress is sent at most, as BuildKit's
// progress writer limits it: file sync reports every packet, and a status for each of
// a context's 10,000 entries costs the server and the client more than the transfer.
const transferEvery = 100 * time.Millisecond

func newProgress(publish func(*controlapi.StatusResponse)) *progress {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &progress{publish: publish, salt: hex.EncodeToString(b[:]), steps: map[int]*controlapi.Vertex{}}
}

// digestLocked names a new vertex: unique in the job, as BuildKit's vertex digests are.
func (p *progress) digestLocked() string {
	p.seq++
	sum := sha256.Sum256([]byte(p.salt + "/" + strconv.Itoa(p.seq)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// startLocked starts a vertex and sends it.
func (p *progress) startLocked(name string, inputs ...string) *controlapi.Vertex {
	v := &controlapi.Vertex{Digest: p.digestLocked(), Name: name, Inputs: inputs, Started: timestamppb.Now()}
	p.open = append(p.open, v)
	p.current = v
	p.sendLocked(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{clone(v)}})
	return v
}

// completeLocked completes an open vertex, with err's text when it failed.
func (p *progress) completeLocked(v *controlapi.Vertex, err error) {
	for i, o := range p.open {
		if o == v {
			p.open = append(p.open[:i], p.open[i+1:]...)
			break
		}
	}
	if v.Completed != nil {
		return
	}
	v.Completed = timestamppb.Now()
	if err != nil {
		v.Error = err.Error()
	}
	if p.current == v {
		p.current = nil
	}
	p.sendLocked(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{clone(v)}})
}

func (p *progress) sendLocked(m *controlapi.StatusResponse) {
	if !p.closed {
		p.publish(m)
	}
}

// clone copies a vertex for sending: the one kept here changes later.
func clone(v *controlapi.Vertex) *controlapi.Vertex {
	return &controlapi.Vertex{
		Digest: v.Digest, Inputs: v.Inputs, Name: v.Name, Cached: v.Cached,
		Started: v.Started, Completed: v.Completed, Error: v.Error,
	}
}

// vertex starts a vertex named name and returns the function that completes it.
func (p *progress) vertex(name string) func(error) {
	p.mu.Lock()
	v := p.startLocked(name)
	p.mu.Unlock()
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.completeLocked(v, err)
		})
	}
}

// transfer reports n bytes moved so far, as a status of the current vertex: the last
// report always, the others at most every transferEvery.
func (p *progress) transfer(what string, n int64, last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return
	}
	if t := time.Now(); last || t.Sub(p.sentTransfer) >= transferEvery {
		p.sentTransfer = t
	} else {
		return
	}
	now := timestamppb.Now()
	st := &controlapi.VertexStatus{ID: what, Vertex: p.current.Digest, Name: what, Current: n, Timestamp: now, Started: p.current.Started}
	if last {
		st.Completed = now
	}
	p.sendLocked(&controlapi.StatusResponse{Statuses: []*controlapi.VertexStatus{st}})
}

// info reports a message: as a log line of the current vertex, or as a vertex of its
// own between steps (waiting for a build slot, pulling a base image).
func (p *progress) info(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current != nil {
		p.logLocked(p.current, 1, []byte(msg+"\n"))
		return
	}
	v := p.startLocked(msg)
	p.completeLocked(v, nil)
}

// warn reports a warning, which buildx prints at the end of the build.
func (p *progress) warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var vertex string
	if p.current != nil {
		vertex = p.current.Digest
	} else {
		v := p.startLocked("[internal] warning")
		p.completeLocked(v, nil)
		vertex = v.Digest
	}
	p.sendLocked(&controlapi.StatusResponse{Warnings: []*controlapi.VertexWarning{{
		Vertex: vertex, Level: 1, Short: []byte(msg),
	}}})
}

func (p *progress) logLocked(v *controlapi.Vertex, stream int64, data []byte) {
	p.sendLocked(&controlapi.StatusResponse{Logs: []*controlapi.VertexLog{{
		Vertex: v.Digest, Stream: stream, Msg: data, Timestamp: timestamppb.Now(),
	}}})
}

// event renders a builder event.
func (p *progress) event(e builder.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := e.(type) {
	case builder.StepStarted:
		if e.StageStep == 0 {
			// ENV, LABEL and the like: BuildKit shows no step for config changes.
			return
		}
		var inputs []string
		if p.last != "" {
			inputs = []string{p.last}
		}
		v := p.startLocked(stepName(e), inputs...)
		p.steps[e.Step] = v
		p.last = v.Digest
	case builder.CacheHit:
		if v := p.steps[e.Step]; v != nil {
			v.Cached = true
		}
	case builder.StepDone:
		if v := p.steps[e.Step]; v != nil {
			p.completeLocked(v, nil)
		}
	case builder.Output:
		if v := p.steps[e.Step]; v != nil {
			stream := int64(1)
			if e.Stderr {
				stream = 2
			}
			p.logLocked(v, stream, append([]byte(nil), e.Data...))
		}
	case builder.Info:
		if p.current != nil {
			p.logLocked(p.current, 1, []byte(e.Message+"\n"))
		} else {
			v := p.startLocked(e.Message)
			p.completeLocked(v, nil)
		}
	case builder.Warning:
		vertex := p.last
		if p.current != nil {
			vertex = p.current.Digest
		}
		if vertex == "" {
			v := p.startLocked("[internal] warning")
			p.completeLocked(v, nil)
			vertex = v.Digest
		}
		p.sendLocked(&controlapi.StatusResponse{Warnings: []*controlapi.VertexWarning{{
			Vertex: vertex, Level: 1, Short: []byte(e.Message),
		}}})
	}
}

// stepName is an instruction's vertex name as BuildKit writes it: "[2/3] RUN make" in
// a one-stage Dockerfile, "[build 2/3] RUN make" or "[stage-0 2/3] …" otherwise.
func stepName(e builder.StepStarted) string {
	count := fmt.Sprintf("%d/%d", e.StageStep, e.StageTotal)
	if e.Stages <= 1 {
		return "[" + count + "] " + e.Text
	}
	stage := e.Stage
	if stage == strconv.Itoa(e.StageIndex) {
		stage = "stage-" + stage
	}
	return "[" + stage + " " + count + "] " + e.Text
}

// close completes every open vertex: the newest with err when the build failed, the
// others as cancelled by it. Nothing is sent after close.
func (p *progress) close(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	open := slices.Clone(p.open)
	for i := len(open) - 1; i >= 0; i-- {
		verr := err
		if err != nil && i != len(open)-1 {
			verr = fmt.Errorf("canceled: %w", err)
		}
		p.completeLocked(open[i], verr)
	}
	p.closed = true
}
