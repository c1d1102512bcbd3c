package isolation

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drainTimeout bounds how long Run keeps copying output after the process exited and
// its process group was killed. Only a process that escaped the group (setsid) and
// still holds the pipe can make the copy last that long.
const drainTimeout = 2 * time.Second

// outputs connects a process's stdout and stderr to the Process writers through pipes
// that Run copies itself. exec.Cmd's own copying would make Wait block until every
// holder of the pipe (a background process) exits; owning the pipes lets Run kill
// the stragglers first and then drain.
type outputs struct {
	stdout, stderr *os.File // the child's ends; nil means /dev/null
	readers        []*os.File
	wg             sync.WaitGroup
}

// newOutputs makes one pipe per distinct non-nil writer and starts copying.
func newOutputs(stdout, stderr io.Writer) (*outputs, error) {
	o := &outputs{}
	var err error
	if stdout != nil {
		if o.stdout, err = o.pipe(stdout); err != nil {
			return nil, err
		}
	}
	switch {
	case stderr == nil:
	case stdout != nil && sameWriter(stdout, stderr):
		o.stderr = o.stdout
	default:
		if o.stderr, err = o.pipe(stderr); err != nil {
			o.closeChildEnds()
			o.abort()
			return nil, err
		}
	}
	return o, nil
}

func (o *outputs) pipe(w io.Writer) (*os.File, error) {
	r, wEnd, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	o.readers = append(o.readers, r)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if _, err := io.Copy(w, r); err != nil && !errors.Is(err, os.ErrClosed) {
			// The consumer failed (a client went away): keep draining so the
			// process never blocks on a full pipe.
			_, _ = io.Copy(io.Discard, r)
		}
	}()
	return wEnd, nil
}

// closeChildEnds closes this process's copies of the child's ends; call it once the
// child has started (or failed to), so EOF arrives when the child's side closes.
func (o *outputs) closeChildEnds() {
	if o.stdout != nil {
		o.stdout.Close()
	}
	if o.stderr != nil && o.stderr != o.stdout {
		o.stderr.Close()
	}
}

// drain waits for the copies to reach EOF, at most drainTimeout, then closes the read
// ends. Output written after that by an escaped process is lost.
func (o *outputs) drain() {
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		o.abort()
		<-done
	}
	for _, r := range o.readers {
		r.Close()
	}
}

func (o *outputs) abort() {
	for _, r := range o.readers {
		r.Close()
	}
}

// sameWriter reports whether a and b are the same writer; comparing interfaces whose
// dynamic type is not comparable panics, and such writers are treated as distinct.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// exitError maps a finished process's status to nil or *ExitError.
func exitError(state *os.ProcessState) error {
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok {
		if state.Success() {
			return nil
		}
		return &ExitError{Code: state.ExitCode()}
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return &ExitError{Code: ws.ExitStatus()}
	case ws.Signaled():
		return &ExitError{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal())}
	}
	return &ExitError{Code: state.ExitCode()}
}

// killGroup sends SIGKILL to the process group pgid. A group that is already gone is
// not an error.
func killGroup(pgid int) error {
	if pgid <= 0 {
		return nil
	}
	if err := unix.Kill(-pgid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}
