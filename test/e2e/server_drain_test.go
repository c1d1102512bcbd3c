package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// opsClient is an HTTP client of a unix socket: kiln serve's --metrics-addr or its
// Docker API socket.
func opsClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// get returns the status and body of GET path on c.
func get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get("http://kiln" + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue is the value of the first sample of name (with its label set as
// written, e.g. `kiln_builds_finished_total{result="success"}`) in a scrape.
func metricValue(scrape, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(scrape)
	if m == nil {
		return ""
	}
	return m[1]
}

// dockerResult is a docker CLI run's combined output and exit code.
type dockerResult struct {
	out  string
	code int
}

// drainServer starts kiln serve with --metrics-addr on a socket beside its own and
// the given --shutdown-grace, and starts a /build (docker build, classic builder) of
// a RUN that sleeps sleep seconds, returning once the build runs. done receives the
// docker CLI's output and exit code.
func drainServer(t *testing.T, grace, sleep string) (s *server, ops *http.Client, tag string, done <-chan dockerResult) {
	t.Helper()
	reg := testworld.Registry(t)
	testworld.Docker(t)
	opsSock := filepath.Join(t.TempDir(), "ops.sock")
	s = startServer(t, "--insecure-registry", reg, "--metrics-addr", "unix://"+opsSock, "--shutdown-grace", grace)
	ops = opsClient(opsSock)
	if code, body := get(t, ops, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a fresh server: %d %s", code, body)
	}
	if code, _ := get(t, ops, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of a fresh server: %d", code)
	}
	tag = "kiln-e2e/drain:" + uniqueTag()
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN sleep " + sleep + " && echo slept > /proof\n"})
	ch := make(chan dockerResult, 1)
	go func() {
		out, code := s.docker(t, []string{"DOCKER_BUILDKIT=0"}, "", "build", "-t", tag, dir)
		ch <- dockerResult{out, code}
	}()
	waitFor(t, 60*time.Second, "the build to run", func() bool {
		_, scrape := get(t, ops, "/metrics")
		return metricValue(scrape, "kiln_builds_running") == "1" && strings.Contains(scrape, `kiln_step_duration_seconds_count{instruction="from"} 1`)
	})
	time.Sleep(500 * time.Millisecond) // into the RUN
	return s, ops, tag, ch
}

// TestServerDrain is a graceful stop: on SIGTERM /readyz turns false, a new /build is
// refused with 503 while the running build finishes and its image is stored, and the
// server then exits cleanly.
func TestServerDrain(t *testing.T) {
	s, ops, tag, done := drainServer(t, "2m", "3")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "/readyz to turn false", func() bool {
		code, body := get(t, ops, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining")
	})
	_, scrape := get(t, ops, "/metrics")
	if v := metricValue(scrape, "kiln_draining"); v != "1" {
		t.Errorf("kiln_draining = %q while draining", v)
	}
	resp, err := opsClient(s.socket).Post("http://kiln/v1.43/build", "application/x-tar", bytes.NewReader(make([]byte, 1024)))
	if err != nil {
		t.Fatalf("a new /build while draining: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "shutting down") {
		t.Errorf("a new /build while draining: %d %s, want 503 saying the server shuts down", resp.StatusCode, body)
	}
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("the running build did not finish: exit %d\n%s", r.code, r.out)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the running build did not finish while the server drained")
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("kiln serve did not exit after draining")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("kiln serve exited %d after draining, want 0", code)
	}
	if log, _ := os.ReadFile(s.log.Name()); !strings.Contains(string(log), "Drained: every build finished") || strings.Contains(string(log), "level=error") {
		t.Errorf("kiln serve's log after a clean drain:\n%s", tail(string(log), 3000))
	}
	checkAfterCrash(t, s.state)
	s.launch(t)
	if out, code := s.docker(t, nil, "", "image", "inspect", tag); code != 0 {
		t.Errorf("the build that finished while the server drained is not in the store:\n%s", out)
	}
}

// TestServerDrainGraceOver: a build still running when --shutdown-grace is over is
// cancelled, its client is told why, nothing of it is stored, and the server exits
// cleanly.
func TestServerDrainGraceOver(t *testing.T) {
	s, _, tag, done := drainServer(t, "1s", "60")
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code == 0 || !strings.Contains(r.out, "shutting down") {
			t.Errorf("the build cancelled after the grace: exit %d, want a failure saying the server shuts down\n%s", r.code, r.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the build was not cancelled after --shutdown-grace")
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("kiln serve did not exit after --shutdown-grace")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("kiln serve took %s to stop with --shutdown-grace 1s", d)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("kiln serve exited %d, want 0", code)
	}
	checkAfterCrash(t, s.state)
	s.launch(t)
	if out, code := s.docker(t, nil, "", "image", "inspect", tag); code == 0 {
		t.Errorf("a cancelled build's image is in the store:\n%s", out)
	}
}
