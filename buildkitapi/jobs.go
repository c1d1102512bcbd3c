package buildkitapi

import (
	"context"
	"strconv"
	"sync"

	controlapi "github.com/moby/buildkit/api/services/control"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
)

// jobs are the solves in flight, by the ref the client chose. A client's calls for one
// solve (Control.Solve, Control.Status, LLBBridge.*) arrive on different streams and in
// no fixed order; the job is where they meet.
type jobs struct {
	mu   sync.Mutex
	byID map[string]*job
}

func newJobs() *jobs { return &jobs{byID: map[string]*job{}} }

// get returns the job for ref, creating it when this is its first call.
func (js *jobs) get(ref string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	j, ok := js.byID[ref]
	if !ok {
		j = newJob(ref)
		js.byID[ref] = j
	}
	return j
}

// remove forgets a finished job.
func (js *jobs) remove(j *job) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.byID[j.ref] == j {
		delete(js.byID, j.ref)
	}
}

// forgetUnstarted removes j when no Solve has claimed it: a Status or LLBBridge call
// for a ref whose Solve never came must not keep it forever.
func (js *jobs) forgetUnstarted(j *job) {
	select {
	case <-j.started:
		return
	default:
	}
	js.remove(j)
}

// cancelAll cancels every job, with cause.
func (js *jobs) cancelAll(cause error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.byID {
		j.cancel(cause)
	}
}

// job is one solve: its status stream, what the Control.Solve asked for, and the
// results its gateway client has solved and returned.
type job struct {
	ref    string
	status *statusLog

	// ctx ends when the server stops (cancel); a Solve also ends with its own call.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// started is closed when Control.Solve has filled req.
	started chan struct{}
	req     *controlapi.SolveRequest

	mu       sync.Mutex
	results  map[string]*built // LLBBridge.Solve results by ref id
	returned chan struct{}     // closed by LLBBridge.Return
	ret      *gatewaypb.ReturnRequest
}

func newJob(ref string) *job {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &job{
		ref: ref, status: newStatusLog(),
		ctx: ctx, cancel: cancel,
		started:  make(chan struct{}),
		results:  map[string]*built{},
		returned: make(chan struct{}),
	}
}

// start records the Control.Solve request; false if the ref is in use already.
func (j *job) start(req *controlapi.SolveRequest) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.req != nil {
		return false
	}
	j.req = req
	close(j.started)
	return true
}

// waitStarted waits for the job's Control.Solve.
func (j *job) waitStarted(ctx context.Context) (*controlapi.SolveRequest, error) {
	select {
	case <-j.started:
		return j.req, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-j.ctx.Done():
		return nil, context.Cause(j.ctx)
	}
}

// addResult keeps a gateway solve's result under a new ref id.
func (j *job) addResult(b *built) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	id := j.ref + "-" + strconv.Itoa(len(j.results)+1)
	j.results[id] = b
	return id
}

// result returns the gateway result with ref id.
func (j *job) result(id string) *built {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.results[id]
}

// setReturn records LLBBridge.Return; only the first counts.
func (j *job) setReturn(r *gatewaypb.ReturnRequest) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.returned:
		return false
	default:
	}
	j.ret = r
	close(j.returned)
	return true
}

// release removes every result's scratch files.
func (j *job) release() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for id, b := range j.results {
		b.release()
		delete(j.results, id)
	}
}

// statusLog is a job's SolveStatus: the messages so far, for Status calls that
// arrive late, and the live ones for those already listening. It ends with the solve.
// It keeps the last statusKeep messages: a client listens from the start, so only a
// reader that falls that far behind (or a second one, late) misses any.
type statusLog struct {
	mu     sync.Mutex
	msgs   []*controlapi.StatusResponse
	base   int // the index of msgs[0] among all messages published
	done   bool
	notify chan struct{} // closed and replaced on every change
}

const statusKeep = 4096

func newStatusLog() *statusLog { return &statusLog{notify: make(chan struct{})} }

// publish appends a message; after close it is dropped.
func (l *statusLog) publish(m *controlapi.StatusResponse) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.msgs = append(l.msgs, m)
	if len(l.msgs) > 2*statusKeep {
		drop := len(l.msgs) - statusKeep
		l.msgs = append([]*controlapi.StatusResponse(nil), l.msgs[drop:]...)
		l.base += drop
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// close ends the log: readers return once they have sent what it holds.
func (l *statusLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.done = true
	close(l.notify)
}

// follow calls send with every message from the first on, until the log is closed
// and drained, send fails, or ctx ends.
func (l *statusLog) follow(ctx context.Context, send func(*controlapi.StatusResponse) error) error {
	next := 0
	for {
		l.mu.Lock()
		next = max(next, l.base)
		pending := l.msgs[next-l.base:]
		done, notify := l.done, l.notify
		l.mu.Unlock()
		for _, m := range pending {
			if err := send(m); err != nil {
				return err
			}
		}
		next += len(pending)
		if done && len(pending) == 0 {
			return nil
		}
		if len(pending) > 0 {
			continue
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
