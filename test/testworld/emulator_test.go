package testworld

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFindWorldBinary checks the lookup order, $KILN_WORLD/rel before PATH, and that
// the error names where it looked and how to install. It sets the environment, so it
// cannot run in parallel.
func TestFindWorldBinary(t *testing.T) {
	world, pathDir := t.TempDir(), t.TempDir()
	inWorld := filepath.Join(world, "npm", ".bin", "tool")
	for _, p := range []string{inWorld, filepath.Join(pathDir, "tool"), filepath.Join(pathDir, "onpath")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("KILN_WORLD", world)
	t.Setenv("PATH", pathDir)
	tests := []struct {
		name, rel, bin string
		want           string // the path found; "" for an error
		wantErr        []string
	}{
		{name: "world first", rel: "npm/.bin", bin: "tool", want: inWorld},
		{name: "then PATH", rel: "npm/.bin", bin: "onpath", want: filepath.Join(pathDir, "onpath")},
		{name: "missing", rel: "bin", bin: "absent",
			wantErr: []string{filepath.Join(world, "bin", "absent"), "on PATH", worldHint}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findWorldBinary(tt.rel, tt.bin)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("findWorldBinary(%q, %q) = %q, %v; want %q", tt.rel, tt.bin, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("findWorldBinary(%q, %q) = %q, want an error", tt.rel, tt.bin, got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestFreePort checks that the port is free: something can listen on it.
func TestFreePort(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", port, err)
	}
	l.Close()
}

// TestStartEmulator runs shell scripts as emulators: one that comes up, one that dies
// first, one that never answers. Each script leaves a background child's PID in a
// file, and the test checks that stopping the emulator killed that child too.
func TestStartEmulator(t *testing.T) {
	t.Parallel()
	notYet := errors.New("not yet")
	tests := []struct {
		name    string
		script  string // run by sh with the child-PID file as $1
		probe   func(ctx context.Context) error
		want    string   // recorder verdict
		wantMsg []string // in the failure message
	}{
		{
			name:   "ready",
			script: `sleep 300 & echo $! >"$1"; wait`,
			probe:  func(context.Context) error { return nil },
			want:   "ok",
		},
		{
			name:    "exits first",
			script:  `sleep 300 & echo $! >"$1"; echo boom >&2; exit 3`,
			probe:   func(context.Context) error { return notYet },
			want:    "fail",
			wantMsg: []string{"fake did not start", "exit status 3", "not yet", "boom"},
		},
		{
			name:    "never answers",
			script:  `sleep 300 & echo $! >"$1"; echo waiting; wait`,
			probe:   func(context.Context) error { return notYet },
			want:    "fail",
			wantMsg: []string{"no answer within 300ms", "not yet", "waiting"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "child.pid")
			var r *recorder
			// a subtest, so its Cleanup (which stops the emulator) has run when it returns
			t.Run("run", func(t *testing.T) {
				r = &recorder{TB: t}
				startEmulator(r, "fake", "/bin/sh", []string{"-c", tt.script, "sh", pidFile}, tt.probe, 300*time.Millisecond)
				if got := r.verdict(); got != tt.want {
					t.Errorf("verdict %s (%s), want %s", got, r.msg, tt.want)
				}
				for _, w := range tt.wantMsg {
					if !strings.Contains(r.msg, w) {
						t.Errorf("message %q does not mention %q", r.msg, w)
					}
				}
				// the child must be running now for its death afterwards to mean anything
				waitFor(t, func() bool { return childPID(pidFile) > 0 }, "the script to record its child")
			})
			pid := childPID(pidFile)
			waitFor(t, func() bool { return gone(pid) }, "the emulator's child "+strconv.Itoa(pid)+" to die")
		})
	}
}

// TestHTTPProbe checks which answers count as ready.
func TestHTTPProbe(t *testing.T) {
	t.Parallel()
	onlyOK := func(status int) bool { return status == http.StatusOK }
	tests := []struct {
		name    string
		status  int
		accept  func(int) bool
		wantErr bool
	}{
		{name: "200, only OK", status: http.StatusOK, accept: onlyOK},
		{name: "403, only OK", status: http.StatusForbidden, accept: onlyOK, wantErr: true},
		{name: "403, any", status: http.StatusForbidden, accept: anyStatus},
		{name: "500, any", status: http.StatusInternalServerError, accept: anyStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(statusHandler(tt.status))
			t.Cleanup(srv.Close)
			err := httpProbe(srv.URL+"/", tt.accept)(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("probe: %v, want error %v", err, tt.wantErr)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		if err := httpProbe("http://"+closedAddr(t)+"/", anyStatus)(context.Background()); err == nil {
			t.Fatal("probe of a closed port succeeded")
		}
	})
}

// childPID reads the PID a test script recorded, or 0.
func childPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// gone reports whether pid no longer runs: absent, or a zombie awaiting its new parent.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	// the state follows the parenthesised command name
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// waitFor polls cond for up to five seconds, failing the test with what it waited for.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// wantObject GETs an emulator's object URL and wants 200 and body.
func wantObject(t *testing.T, url, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(got) != body {
		t.Fatalf("GET object: %s %q, want 200 %q", resp.Status, got, body)
	}
}
