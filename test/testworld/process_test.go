package testworld

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestHelpersLeaveNoProcess runs each helper that starts a process in a subtest and
// checks, once the subtest has ended, that no process it started is left: `make test`
// used to leave a git-daemon behind for every GitDaemon.
func TestHelpersLeaveNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	tests := []struct {
		name string
		// start starts the helper and returns an argument only its processes have.
		start func(t *testing.T) string
	}{
		{"Start kills the whole group", func(t *testing.T) string {
			// The shell's child would survive a kill of the shell's PID alone.
			marker := fmt.Sprintf("4242.%d", time.Now().UnixNano()%1e6)
			Start(t, exec.Command("sh", "-c", "sleep "+marker+" & wait"))
			waitForProcess(t, marker)
			return marker
		}},
		{"GitDaemon", func(t *testing.T) string {
			if _, err := exec.LookPath("git"); err != nil {
				t.Skip("git is not installed")
			}
			work := t.TempDir()
			Git(t, work, "init", "-q")
			if err := os.WriteFile(filepath.Join(work, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			Git(t, work, "add", "f")
			Git(t, work, "commit", "-q", "-m", "x")
			u, err := url.Parse(GitDaemon(t, work))
			if err != nil {
				t.Fatal(err)
			}
			marker := "--port=" + u.Port()
			waitForProcess(t, marker)
			return marker
		}},
		// The emulators' processes have their port as an argument of its own.
		{"S3", func(t *testing.T) string { return portArg(t, S3(t).Endpoint) }},
		{"GCS", func(t *testing.T) string { endpoint, _ := GCS(t); return portArg(t, endpoint) }},
		{"Azurite", func(t *testing.T) string { return portArg(t, Azurite(t).Endpoint) }},
	}
	for _, tt := range tests {
		var marker string
		t.Run(tt.name, func(t *testing.T) { marker = tt.start(t) })
		if marker == "" {
			continue // skipped
		}
		// A killed process is gone once the kernel has torn it down, a moment later.
		pids := ProcessesWith(marker)
		for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(deadline); pids = ProcessesWith(marker) {
			time.Sleep(50 * time.Millisecond)
		}
		if len(pids) > 0 {
			t.Errorf("%s: processes %v (with argument %s) outlived the test", tt.name, pids, marker)
		}
	}
}

// portArg is the port of endpoint, once a process with it as an argument runs.
func portArg(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	waitForProcess(t, u.Port())
	return u.Port()
}

// waitForProcess waits until a process with arg runs, so the check after the test is
// not vacuous.
func waitForProcess(t *testing.T, arg string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(ProcessesWith(arg)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no process with argument %s started", arg)
		}
	}
}
