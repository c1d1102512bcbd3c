package isolation

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The in-place runner executes on this machine's "/": these tests run only harmless
// commands that write nothing.

func TestInPlaceRun(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name       string
		args       []string
		env        []string
		dir        string
		wantStdout string
		wantStderr string
		wantCode   int
		wantSignal string
		wantErr    string
	}{
		{name: "shell form", args: []string{"/bin/sh", "-c", "echo hello"}, wantStdout: "hello\n"},
		{name: "stdout and stderr", args: []string{"/bin/sh", "-c", "echo out; echo err >&2"}, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "exit code", args: []string{"/bin/sh", "-c", "exit 3"}, wantCode: 3},
		{name: "signal", args: []string{"/bin/sh", "-c", "kill -9 $$"}, wantCode: 137, wantSignal: "SIGKILL"},
		{name: "exec form uses Env's PATH", args: []string{"echo", "hi"}, env: []string{"PATH=/nonexistent:/bin"}, wantStdout: "hi\n"},
		{name: "PATH from Env, not kiln's", args: []string{"echo", "hi"}, env: []string{"PATH=/nonexistent"}, wantCode: 127, wantErr: `exec: "echo": executable file not found in $PATH`},
		{name: "environment is exact", args: []string{"/usr/bin/env"}, env: []string{"A=1", "B=2"}, wantStdout: "A=1\nB=2\n"},
		{name: "working directory", args: []string{"/bin/sh", "-c", "pwd"}, dir: dir, wantStdout: dir + "\n"},
		{name: "missing working directory", args: []string{"true"}, dir: dir + "/nope", wantErr: "working directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			env := tc.env
			if env == nil {
				env = []string{"PATH=/usr/bin:/bin"}
			}
			err := NewInPlace().Run(context.Background(), asSelf(t, Process{
				Args: tc.args, Env: env, Dir: tc.dir, Stdout: &stdout, Stderr: &stderr,
			}))
			if stdout.String() != tc.wantStdout || stderr.String() != tc.wantStderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tc.wantStdout, tc.wantStderr)
			}
			checkErr(t, err, tc.wantCode, tc.wantSignal, tc.wantErr)
		})
	}
}

func TestInPlaceSharedWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := NewInPlace().Run(context.Background(), asSelf(t, Process{
		Args: []string{"/bin/sh", "-c", "echo one; echo two >&2; echo three"}, Env: []string{},
		Stdout: &out, Stderr: &out,
	}))
	if err != nil || out.String() != "one\ntwo\nthree\n" {
		t.Errorf("got %q, %v", out.String(), err)
	}
}

func TestInPlaceCancelKillsGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := NewInPlace().Run(ctx, asSelf(t, Process{
		Args: []string{"/bin/sh", "-c", "sleep 103 & sleep 103; echo never"}, Env: []string{"PATH=/bin"},
	}))
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Run returned after %v", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	requireNoProcess(t, "sleep", "103")
}

func TestInPlaceKillsBackgroundProcesses(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	start := time.Now()
	err := NewInPlace().Run(context.Background(), asSelf(t, Process{
		Args: []string{"/bin/sh", "-c", "sleep 104 & echo started"}, Env: []string{"PATH=/bin"}, Stdout: &out,
	}))
	if err != nil || out.String() != "started\n" {
		t.Fatalf("got %q, %v", out.String(), err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run waited %v for the background process", elapsed)
	}
	requireNoProcess(t, "sleep", "104")
}

func TestInPlaceRefusesNoNetwork(t *testing.T) {
	err := NewInPlace().Run(context.Background(), Process{Args: []string{"/bin/true"}, NoNetwork: true})
	if err == nil || !strings.Contains(err.Error(), "cannot take the network away") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}
