package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// TestOpsProbes: /healthz answers while the process lives; /readyz only when the
// queue exists and does not drain, the store is there and the state directory can
// be written.
func TestOpsProbes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(o *opsServer)
		ready   int
		because string
	}{
		{"ready", func(*opsServer) {}, http.StatusOK, ""},
		{"starting", func(o *opsServer) { o.queue = nil }, http.StatusServiceUnavailable, "starting"},
		{"draining", func(o *opsServer) { o.queue.Drain() }, http.StatusServiceUnavailable, "draining"},
		{"store gone", func(o *opsServer) { os.RemoveAll(o.storeDir) }, http.StatusServiceUnavailable, "image store"},
		{"state dir not writable", func(o *opsServer) { o.stateDir = filepath.Join(o.stateDir, "missing") }, http.StatusServiceUnavailable, "not writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := newOpsServer("unix:///unused.sock", logrus.New())
			if err != nil {
				t.Fatal(err)
			}
			o.stateDir = t.TempDir()
			o.storeDir = filepath.Join(o.stateDir, "store")
			if err := os.Mkdir(o.storeDir, 0o700); err != nil {
				t.Fatal(err)
			}
			o.queue = builder.NewQueue(builder.Workspace{Isolation: isolation.Chroot}, 1)
			tc.setup(o)
			srv := httptest.NewServer(o.handler())
			defer srv.Close()
			for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": tc.ready} {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want || (path == "/readyz" && !strings.Contains(string(body), tc.because)) {
					t.Errorf("%s: %d %s, want %d saying %q", path, resp.StatusCode, body, want, tc.because)
				}
			}
		})
	}
}

// TestMetricsNames: every kiln metric is exported from the start with the kiln_
// prefix, results and cache kinds at 0.
func TestMetricsNames(t *testing.T) {
	t.Parallel()
	o, err := newOpsServer("tcp://127.0.0.1:0", logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o.handler())
	defer srv.Close()
	o.metrics.BuildStarted()
	o.metrics.BuildFinished(builder.Classify(&builder.RunError{Code: 1}), 0)
	o.metrics.StepFinished("run", 0)
	o.metrics.PhaseFinished("run", 0)
	o.metrics.QueueWaited(0)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"kiln_builds_started_total 1", `kiln_builds_finished_total{result="run_failed"} 1`,
		`kiln_builds_finished_total{result="success"} 0`, `kiln_builds_finished_total{result="registry_error"} 0`,
		"kiln_builds_running 0", "kiln_queue_length 0", "kiln_draining 0", "kiln_queue_wait_seconds_count 1",
		`kiln_step_duration_seconds_count{instruction="run"} 1`, `kiln_cache_hits_total{kind="base-layer"} 0`,
		"kiln_pulled_bytes_total 0", "kiln_pushed_bytes_total 0", "kiln_context_received_bytes_total 0",
		`kiln_build_duration_seconds_bucket{result="run_failed",le="1"} 1`,
		`kiln_build_phase_seconds_count{phase="run"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
