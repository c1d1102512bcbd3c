package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

// sink is where a build's messages go: the response stream, or (q=1) a buffer.
type sink interface {
	send(m message)
}

// quietSink holds a q=1 build's messages: dockerd writes nothing until the build ends,
// then only the image ID, or, on failure, the whole log followed by the error
// (docs/server.md, "-q and --iidfile").
type quietSink struct {
	mu   sync.Mutex
	msgs []message
}

func (q *quietSink) send(m message) {
	if m.Aux != nil {
		return // the CLI reads no aux in quiet mode; dockerd sends none
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
}

func (q *quietSink) flush(to *stream) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.msgs {
		to.send(m)
	}
	q.msgs = nil
}

// buildOutput renders one build's progress the way dockerd's classic builder writes it
// (docs/server.md, "The build's output stream"), whatever the sink.
type buildOutput struct {
	ctx   context.Context // the request's: its cause tells a leaving client from a shutdown
	live  *stream
	quiet *quietSink // nil unless q=1
	out   sink       // live or quiet

	mu        sync.Mutex
	said      bool   // a message went to out: errors must now go in-stream
	stage     string // the stage of the last step
	lastID    v1.Hash
	pending   bool     // the last step's " ---> <id>" line is held back (see flushStepID)
	container string   // the RUN "container" of the current step
	stepped   bool     // a step started: warnings now wait for the end, as dockerd's do
	deferred  []string // warnings to write after the image ID
}

func newBuildOutput(ctx context.Context, w http.ResponseWriter, quiet bool) *buildOutput {
	o := &buildOutput{ctx: ctx, live: newStream(w)}
	o.out = o.live
	if quiet {
		o.quiet = &quietSink{}
		o.out = o.quiet
	}
	return o
}

func (o *buildOutput) streamText(s string) {
	o.said = true
	o.out.send(message{Stream: s})
}

// info writes a line of the server's own (queue position, push progress).
func (o *buildOutput) info(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.streamText(line + "\n")
}

// status writes a status message, as dockerd's pull and push progress is written.
func (o *buildOutput) status(id, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.said = true
	o.out.send(message{ID: id, Status: text})
}

// event renders one builder event.
func (o *buildOutput) event(e builder.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e := e.(type) {
	case builder.StepStarted:
		// dockerd announces each finished stage's image before the next stage starts.
		o.flushStepID(o.lastID)
		if o.stage != "" && e.Stage != o.stage && o.lastID != (v1.Hash{}) {
			o.said = true
			o.out.send(message{Aux: imageIDAux{ID: o.lastID.String()}})
		}
		o.stage, o.stepped, o.container = e.Stage, true, ""
		o.streamText(fmt.Sprintf("Step %d/%d : %s", e.Step, e.Total, e.Text))
		o.streamText("\n")
	case builder.Running:
		o.container = e.ID
		o.streamText(" ---> Running in " + e.ID + "\n")
	case builder.Output:
		o.streamText(string(e.Data))
	case builder.CacheHit:
		o.streamText(" ---> Using cache\n")
	case builder.StepDone:
		if o.container != "" {
			o.streamText("Removing intermediate container " + o.container + "\n")
			o.container = ""
		}
		o.lastID, o.pending = e.ImageID, true
	case builder.Warning:
		if o.stepped {
			o.deferred = append(o.deferred, e.Message)
		} else {
			o.streamText("[Warning] " + e.Message + "\n")
		}
	case builder.Info:
		o.streamText(e.Message + "\n")
	}
}

// flushStepID writes the held-back " ---> <id>" line of the last finished step. It is
// held until the next step starts or the build ends because the builder's final image
// (its config stamped when the build ends) may have another ID than the last step's
// state: dockerd prints the built image's ID there, and so does kiln.
func (o *buildOutput) flushStepID(id v1.Hash) {
	if !o.pending {
		return
	}
	o.pending = false
	o.streamText(" ---> " + shortID(id) + "\n")
}

// imageIDAux is the aux payload carrying an image ID; the CLI writes it to --iidfile.
type imageIDAux struct {
	ID string `json:"ID"`
}

// built writes the end of a successful build: the image ID, the warnings held back,
// "Successfully built" and one "Successfully tagged" per tag. With q=1 only the ID.
func (o *buildOutput) built(id v1.Hash, tags []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.quiet != nil {
		o.quiet.msgs = nil
		o.live.send(message{Stream: id.String() + "\n"})
		return
	}
	o.flushStepID(id)
	o.out.send(message{Aux: imageIDAux{ID: id.String()}})
	for _, w := range o.deferred {
		o.streamText("[Warning] " + w + "\n")
	}
	o.deferred = nil
	o.streamText("Successfully built " + shortID(id) + "\n")
	for _, t := range tags {
		o.streamText("Successfully tagged " + t + "\n")
	}
	o.said = true
}

// fail ends the response with err. Before any output it is an HTTP error (400 for a
// Dockerfile the parser rejects, as dockerd answers); after, an in-stream error whose
// code is a failed RUN's exit code, so `docker build` exits with it. With q=1 the log is
// replayed first. A build cancelled because the client left writes nothing.
func (o *buildOutput) fail(w http.ResponseWriter, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cause := err // what Classify sees, before a shutdown's message replaces it
	if errors.Is(err, context.Canceled) {
		if !errors.Is(context.Cause(o.ctx), ErrShutdown) {
			return // the client left: nobody reads an answer
		}
		// The server is stopping under a client that is still there: a clean end of
		// stream would read as success, so say why the build stopped.
		err = errors.New("the build was cancelled: the kiln server is shutting down")
	}
	o.flushStepID(o.lastID)
	if !o.said {
		status, msg := http.StatusInternalServerError, err.Error()
		var ie *builder.InstructionError
		var re *builder.RunError
		if errors.As(err, &ie) && ie.Line > 0 && !errors.As(err, &re) {
			status, msg = http.StatusBadRequest, fmt.Sprintf("dockerfile parse error line %d: %v", ie.Line, ie.Err)
		}
		if builder.IsQueueFull(err) || builder.IsDraining(err) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, msg)
		return
	}
	if o.quiet != nil {
		o.quiet.flush(o.live)
	}
	code, msg := 0, err.Error()
	var re *builder.RunError
	if errors.As(err, &re) {
		code, msg = re.Code, re.Error()
	}
	// The message ends with whose problem the failure is (builder.Classify).
	o.live.Error(code, builder.Annotate(msg, cause))
}

// shortID is the 12 hex digits docker prints for an image ID.
func shortID(h v1.Hash) string {
	if len(h.Hex) < 12 {
		return h.Hex
	}
	return h.Hex[:12]
}
