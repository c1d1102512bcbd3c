package testworld

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// emulatorPollInterval is how long startEmulator waits between readiness probes.
const emulatorPollInterval = 100 * time.Millisecond

// findWorldBinary finds the executable name: first in $KILN_WORLD/rel (default
// /var/tmp/kiln-world), where world.sh installs it, then on PATH. The error names
// both places and how to install the world.
func findWorldBinary(rel, name string) (string, error) {
	state := os.Getenv("KILN_WORLD")
	if state == "" {
		state = "/var/tmp/kiln-world"
	}
	p := filepath.Join(state, rel, name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if found, err := exec.LookPath(name); err == nil {
		return found, nil
	}
	return "", fmt.Errorf("no %s at %s or on PATH: %s", name, p, worldHint)
}

// freePort asks the kernel for a loopback port no one listens on. Another process may
// take it before the emulator binds it; the emulator then exits, which startEmulator
// notices, rather than the test talking to the wrong server.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEmulator runs bin with args and returns once probe succeeds. The process gets
// its own process group, so stopping it also stops anything it spawned (Node servers
// fork helpers); the group, identified by the PID this test started, is killed when
// the test ends. probe runs every emulatorPollInterval with a context that expires
// after timeout; if the process exits or the timeout passes first, the test fails
// with the process's output (stdout and stderr, kept in a file under t.TempDir()).
func startEmulator(t testing.TB, name, bin string, args []string, probe func(ctx context.Context) error, timeout time.Duration) {
	t.Helper()
	startDaemon(t, name, bin, args, probe, timeout, 0)
}

// startDaemon is startEmulator with a graceful stop: when grace > 0, the process first
// gets SIGTERM and up to grace to exit (a daemon that mounts things unmounts them), and
// only then is its process group killed.
func startDaemon(t testing.TB, name, bin string, args []string, probe func(ctx context.Context) error, timeout, grace time.Duration) {
	t.Helper()
	// Output goes to a file, not a pipe: Wait would also wait for a pipe's last writer,
	// and a child that outlives the emulator would hide its exit until the timeout.
	logPath := filepath.Join(t.TempDir(), name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testworld: %v", err)
		return
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	log.Close() // the process holds its own copy
	if err != nil {
		t.Fatalf("testworld: starting %s (%s): %v", name, bin, err)
		return
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	var once sync.Once
	// once: after the first stop reaps the process its PID may be reused, so the
	// group is never signalled twice
	stop := func() {
		once.Do(func() {
			if grace > 0 {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(grace):
				}
			}
			// the group too: children the process left behind (the PID itself may be
			// reaped already, but its group ID stays ours while any member lives)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
	}
	t.Cleanup(stop)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	fail := func(format string, args ...any) {
		t.Helper()
		stop() // the output is complete once the whole group is dead
		out, err := os.ReadFile(logPath)
		if err != nil {
			out = []byte(err.Error())
		}
		t.Fatalf("testworld: %s did not start: %s\n%s", name, fmt.Sprintf(format, args...), out)
	}
	for {
		err := probe(ctx)
		if err == nil {
			return
		}
		select {
		case <-exited:
			fail("it exited (%v) before answering; last probe: %v", waitErr, err)
			return
		case <-ctx.Done():
			fail("no answer within %v: %v", timeout, err)
			return
		case <-time.After(emulatorPollInterval):
		}
	}
}

// httpProbe returns a startEmulator probe that GETs u and succeeds when the server
// answers with a status accept allows.
func httpProbe(u string, accept func(status int) bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if !accept(resp.StatusCode) {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return nil
	}
}

// anyStatus accepts every HTTP status: for servers where any answer, even a refusal
// of an unsigned request, means they are up.
func anyStatus(int) bool { return true }
