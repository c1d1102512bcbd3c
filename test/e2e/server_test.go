package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// server is a `kiln serve` process started for one test.
type server struct {
	socket string // unix socket path
	host   string // DOCKER_HOST value
	state  string
	cmd    *exec.Cmd
	log    *os.File
	done   <-chan struct{} // closed when cmd has exited
}

// startServer runs `kiln serve` on a unix socket in a temporary state directory with
// chroot isolation, waits until it answers /_ping, and stops it when the test ends.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerOn(t, nil, args...)
}

// startServerOn is startServer that first calls prepare (when not nil) with the state
// directory's path, to put a filesystem there.
func startServerOn(t *testing.T, prepare func(state string), args ...string) *server {
	t.Helper()
	testworld.RequireRoot(t)
	dir, err := os.MkdirTemp("", "kiln-serve-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &server{socket: filepath.Join(dir, "kiln.sock"), state: filepath.Join(dir, "state")}
	s.host = "unix://" + s.socket
	if prepare != nil {
		prepare(s.state)
	}
	s.launch(t, args...)
	return s
}

// launch starts `kiln serve` on s's socket and state directory (again, after kill9),
// waits until it answers /_ping, and stops it when the test ends.
func (s *server) launch(t *testing.T, args ...string) {
	t.Helper()
	var err error
	s.log, err = os.OpenFile(filepath.Join(filepath.Dir(s.socket), "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"serve", "-H", s.host, "--state-dir", s.state, "--isolation", "chroot"}, args...)
	cmd := exec.Command(testworld.KilnBinary(t), all...)
	s.cmd = cmd
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Its own process group: whatever it leaves running goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.done = done
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(s.log.Name())
			t.Logf("kiln serve log:\n%s", tail(string(data), 4000))
		}
	})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.socket)
	}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://kiln/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			data, _ := os.ReadFile(s.log.Name())
			t.Fatalf("kiln serve exited before answering /_ping\n%s", tail(string(data), 4000))
		default:
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(s.log.Name())
			t.Fatalf("kiln serve did not answer /_ping: %v\n%s", err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 kills the server with SIGKILL, as a crash or the OOM killer would, and waits
// for it to be gone.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("kiln serve survived SIGKILL")
	}
}

// docker runs the docker CLI against the server (legacy builder, like CLI 28 without
// buildx) with its own config directory, returning combined output and exit code.
func (s *server) docker(t *testing.T, env []string, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"-H", s.host}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %v: %v", args, err)
	}
	return string(out), code
}

// mustDocker is docker that fails the test on a non-zero exit.
func (s *server) mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, code := s.docker(t, nil, "", args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
