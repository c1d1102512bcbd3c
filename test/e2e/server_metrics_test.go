package e2e

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestServerMetrics drives kiln serve's doors and reads /metrics: a classic /build
// and a buildx solve count the same, a failing RUN is run_failed, a rebuild hits the
// step cache, and pulls, pushes and received contexts are counted in bytes.
func TestServerMetrics(t *testing.T) {
	reg := testworld.Registry(t)
	testworld.Docker(t)
	cfg := testworld.Buildx(t)
	opsSock := filepath.Join(t.TempDir(), "ops.sock")
	s := startServer(t, "--insecure-registry", reg, "--metrics-addr", "unix://"+opsSock)
	ops := opsClient(opsSock)
	scrape := func() string {
		t.Helper()
		code, body := get(t, ops, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		return body
	}
	num := func(body, name string) float64 {
		t.Helper()
		v, err := strconv.ParseFloat(metricValue(body, name), 64)
		if err != nil {
			t.Fatalf("%s: %v in\n%s", name, err, body)
		}
		return v
	}
	before := scrape()
	for _, name := range []string{`kiln_builds_finished_total{result="user_error"}`, "kiln_queue_length", "kiln_builds_running", "kiln_draining"} {
		if v := num(before, name); v != 0 {
			t.Errorf("%s = %v before any build", name, v)
		}
	}

	tag := reg + "/kiln-e2e/metrics:" + uniqueTag()
	ok := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + "/busybox:1.35\nCOPY payload /payload\nRUN cat /payload > /copy\n",
		"payload":    strings.Repeat("kiln metrics\n", 1000),
	})
	classic := []string{"DOCKER_BUILDKIT=0"}
	for range 2 { // the second build hits the step cache
		if out, code := s.docker(t, classic, "", "build", "-t", tag, ok); code != 0 {
			t.Fatalf("docker build: exit %d\n%s", code, out)
		}
	}
	failing := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN exit 3\n"})
	if out, code := s.docker(t, classic, "", "build", failing); code == 0 {
		t.Fatalf("a failing RUN built\n%s", out)
	}
	s.mustBuildx(t, cfg, "build", "--progress=plain", ok)
	s.mustDocker(t, "push", tag)

	m := scrape()
	for name, want := range map[string]float64{
		"kiln_builds_started_total":                           4,
		`kiln_builds_finished_total{result="success"}`:        3,
		`kiln_builds_finished_total{result="run_failed"}`:     1,
		"kiln_builds_running":                                 0,
		`kiln_build_duration_seconds_count{result="success"}`: 3,
		`kiln_step_duration_seconds_count{instruction="run"}`: 3, // the failed one never finished
	} {
		if got := num(m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{
		`kiln_cache_hits_total{kind="step"}`, `kiln_cache_misses_total{kind="step"}`,
		`kiln_cache_misses_total{kind="base-layer"}`, "kiln_queue_wait_seconds_count",
		"kiln_pulled_bytes_total", "kiln_pushed_bytes_total",
	} {
		if got := num(m, name); got <= 0 {
			t.Errorf("%s = %v, want more than 0", name, got)
		}
	}
	// The payload's 13000 bytes, sent by two classic builds and one buildx build.
	if got := num(m, "kiln_context_received_bytes_total"); got < 3*13000 {
		t.Errorf("kiln_context_received_bytes_total = %v, want at least 3 x the payload's 13000 bytes", got)
	}
}
