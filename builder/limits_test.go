package builder_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// serverCaps returns a workspace edit giving the build this host's cgroups and the
// server's caps, or skips when no cgroup is writable here.
func serverCaps(t *testing.T, memory, pids int64, timeout time.Duration) func(*builder.Workspace) {
	t.Helper()
	cg, err := isolation.OpenCgroups()
	if err != nil {
		t.Skipf("no writable cgroup: %v", err)
	}
	return func(ws *builder.Workspace) {
		ws.Cgroups, ws.MaxMemory, ws.MaxPids, ws.Timeout = cg, memory, pids, timeout
	}
}

// TestBuildLimits runs the attacks a build server must survive as real chroot builds:
// each fails its build with a message naming the limit, ends by itself, and the next
// build on the same workspace settings succeeds.
func TestBuildLimits(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name         string
		run          string
		memory, pids int64
		timeout      time.Duration
		limits       isolation.Limits
		wantErr      string
		wantLimit    bool // the error is an *isolation.LimitError
		wantTimeout  bool // the error is a *builder.TimeoutError
		maxDuration  time.Duration
	}{
		{name: "memory hog", run: "head -c 500m /dev/zero | tail", memory: 64 << 20,
			wantErr: "RUN was killed: the build's memory limit (64MiB) was reached", wantLimit: true, maxDuration: time.Minute},
		{name: "the request's memory under the server's", run: "head -c 100m /dev/zero | tail", memory: 1 << 30,
			limits: isolation.Limits{Memory: 48 << 20}, wantErr: "memory limit (48MiB) was reached", wantLimit: true, maxDuration: time.Minute},
		// busybox's ash refuses ":" as a function name; the bomb is the classic one renamed.
		{name: "fork bomb", run: "bomb(){ bomb|bomb& }; bomb; sleep 2", pids: 64,
			wantErr: "RUN reached the build's process limit (64 processes)", wantLimit: true, maxDuration: time.Minute},
		{name: "the server's pids cap wins", run: "for i in $(seq 40); do sleep 1 & done; wait", pids: 16,
			limits: isolation.Limits{Pids: 1000}, wantErr: "process limit (16 processes)", wantLimit: true, maxDuration: time.Minute},
		{name: "timeout", run: "sleep 60", timeout: 2 * time.Second,
			wantErr: "it ran longer than the server's build timeout (--build-timeout 2s)", wantTimeout: true, maxDuration: 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caps := serverCaps(t, tc.memory, tc.pids, tc.timeout)
			start := time.Now()
			_, _, err := w.build(t, buildCase{
				dockerfile: "FROM BUSYBOX\nRUN " + tc.run + "\n",
				limits:     tc.limits,
				workspace:  caps,
			})
			if d := time.Since(start); d > tc.maxDuration {
				t.Errorf("the build took %s, want at most %s", d, tc.maxDuration)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			var le *isolation.LimitError
			var te *builder.TimeoutError
			if tc.wantLimit != errors.As(err, &le) || tc.wantTimeout != errors.As(err, &te) {
				t.Errorf("error %T %v: want LimitError %v, TimeoutError %v", err, err, tc.wantLimit, tc.wantTimeout)
			}
			// The next build under the same caps is unaffected (with a timeout it
			// cannot reach on a loaded machine: a 2s one failed it under load 10).
			after := caps
			if tc.timeout > 0 {
				after = serverCaps(t, tc.memory, tc.pids, 2*time.Minute)
			}
			res, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\nRUN echo fine > /ok\n", workspace: after})
			if err != nil || res == nil {
				t.Fatalf("the build after: %v", err)
			}
		})
	}
	// No RUN cgroup is left behind (they are named kiln-run-*). Other test binaries of
	// `go test ./...` make theirs in the same hierarchy while this one looks: a cgroup
	// counts as left only if it is still there after every RUN of theirs could end.
	left := runCgroups()
	for deadline := time.Now().Add(45 * time.Second); len(left) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		still := map[string]bool{}
		for p := range runCgroups() {
			if left[p] {
				still[p] = true
			}
		}
		left = still
	}
	for p := range left {
		t.Errorf("RUN cgroup left: %s", p)
	}
}

// runCgroups lists the RUN cgroups (kiln-run-*) of the memory and pids hierarchies.
func runCgroups() map[string]bool {
	found := map[string]bool{}
	for _, h := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"} {
		_ = filepath.WalkDir(h, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "kiln-run-") {
				found[p] = true
			}
			if err == nil && d.IsDir() && strings.Count(strings.TrimPrefix(p, h), "/") > 3 {
				return fs.SkipDir
			}
			return nil
		})
	}
	return found
}

// TestBuildLimitsRefused: limits nothing can apply are refused before anything runs,
// naming the parameter.
func TestBuildLimitsRefused(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name    string
		limits  isolation.Limits
		ws      func(*builder.Workspace)
		wantErr string
	}{
		{name: "no cgroup", limits: isolation.Limits{Memory: 64 << 20, CPUShares: 512},
			wantErr: "memory, cpushares: resource limits need a writable cgroup"},
		{name: "in place", limits: isolation.Limits{ShmSize: 1 << 20, Ulimits: []isolation.Ulimit{{Name: "nofile", Soft: 10, Hard: 10}}},
			ws:      func(ws *builder.Workspace) { ws.Isolation = isolation.InPlace },
			wantErr: "ulimits, shmsize: resource limits need chroot isolation"},
		{name: "tiny memory", limits: isolation.Limits{Memory: 1 << 20}, wantErr: "memory: Minimum memory limit allowed is 6MB"},
		{name: "swap under memory", limits: isolation.Limits{Memory: 64 << 20, MemorySwap: 32 << 20}, wantErr: "memswap: Minimum memoryswap limit should be larger"},
		{name: "swap alone", limits: isolation.Limits{MemorySwap: 32 << 20}, wantErr: "memswap: You should always set the Memory limit"},
		{name: "period", limits: isolation.Limits{CPUPeriod: 10}, wantErr: "cpuperiod: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{name: "quota", limits: isolation.Limits{CPUQuota: 10}, wantErr: "cpuquota: CPU cfs quota"},
		{name: "bad ulimit", limits: isolation.Limits{Ulimits: []isolation.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}}, wantErr: "ulimits: ulimit nofile: soft limit 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\nRUN true\n", limits: tc.limits, workspace: tc.ws})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
