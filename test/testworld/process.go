package testworld

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Start starts cmd in a process group of its own and, when the test ends, kills the
// whole group and waits for cmd. Killing only cmd's PID leaves what it spawned running:
// `git daemon` is a wrapper whose git-daemon child outlives it, and `make test` left
// one per test behind. The returned stop does the same at once, and only once (after
// the first wait the PID may be reused).
func Start(t testing.TB, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("testworld: starting %s: %v", cmd.Path, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// ProcessesWith returns the PIDs of the processes whose command line contains arg as
// one whole argument, read from /proc. Tests use it to check that a helper left no
// process behind.
func ProcessesWith(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(raw, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
