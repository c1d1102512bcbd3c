package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/test/testworld"
)

// openPTY opens a pseudo-terminal pair: the master the test reads, the slave a
// command writes to as its terminal (120 columns).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("the pty's number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		t.Fatalf("opening the pty's slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		t.Fatalf("sizing the pty: %v", err)
	}
	return m, s
}

// runOnPTY runs the command with its stdout and stderr on a fresh pty and returns
// what it wrote and its exit code.
func runOnPTY(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	m, s := openPTY(t)
	defer m.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	s.Close() // the child holds it now; the master reads EIO once the child is gone
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, m) // ends with EIO when the child's side closes
		close(copied)
	}()
	err := cmd.Wait()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("the pty did not close after the command ended")
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// TestBuildProgressBars: kiln build on a terminal draws a progress bar per base
// layer download and per push, redrawn in place with cursor movements; on a pipe it
// writes plain lines, with no escape sequences, one per finished transfer.
func TestBuildProgressBars(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	kiln := testworld.KilnBinary(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/debian:bookworm\nRUN echo built > /proof\n"})
	dest := reg + "/kiln-e2e/progress:" + uniqueTag()
	args := func() []string {
		return []string{"build", "--isolation=chroot", "--context", ctx, "--insecure", "--insecure-pull",
			"--destination", dest, "--state-dir", t.TempDir()}
	}

	tty, code := runOnPTY(t, kiln, args()...)
	if code != 0 {
		t.Fatalf("kiln build on a pty: exit %d\n%s", code, tty)
	}
	for _, want := range []string{"Downloading [", "Download complete", "\x1b[", dest + ": Pushed"} {
		if !strings.Contains(tty, want) {
			t.Errorf("on a terminal, no %q in\n%q", want, tail(tty, 3000))
		}
	}

	piped, code := tryRun(kiln, append(args(), "--log-format", "text")...)
	if code != 0 {
		t.Fatalf("kiln build on a pipe: exit %d\n%s", code, piped)
	}
	if strings.Contains(piped, "\x1b[") || strings.Contains(piped, "Downloading [") {
		t.Errorf("on a pipe, progress bars or escape sequences in\n%q", tail(piped, 3000))
	}
	for _, want := range []string{": Download complete (", dest + ": Pushed ("} {
		if !strings.Contains(piped, want) {
			t.Errorf("on a pipe, no %q line in\n%s", want, tail(piped, 3000))
		}
	}
}
