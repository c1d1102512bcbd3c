package testworld

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skip and Fatal instead of stopping the goroutine,
// so the helpers' verdicts can be checked. The embedded TB supplies everything else.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Skip(args ...any)             { r.skipped, r.msg = true, fmt.Sprint(args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skipped, r.msg = true, fmt.Sprintf(f, args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.failed, r.msg = true, fmt.Sprintf(f, args...) }

// verdict summarises what the helper did to the test: "ok", "skip" or "fail".
func (r *recorder) verdict() string {
	switch {
	case r.skipped && r.failed:
		return "skip+fail"
	case r.skipped:
		return "skip"
	case r.failed:
		return "fail"
	}
	return "ok"
}

func statusHandler(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		wantErr bool
	}{
		{"127.0.0.1:5000", false},
		{"127.0.0.2:5011", false},
		{"localhost:5000", false},
		{"[::1]:5000", false},
		{"10.0.0.1:5000", true},
		{"registry.example.com:5000", true},
		{"127.0.0.1", true},
		{"127.0.0.1:", true},
	}
	for _, tt := range tests {
		err := checkLoopback(tt.addr)
		if (err != nil) != tt.wantErr {
			t.Errorf("checkLoopback(%q) = %v, want error %v", tt.addr, err, tt.wantErr)
		}
	}
}

func TestProbeRegistry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		code    int
		wantErr bool
	}{
		{"ok", http.StatusOK, false},
		{"needs auth", http.StatusUnauthorized, false},
		{"not a registry", http.StatusNotFound, true},
		{"broken", http.StatusInternalServerError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v2/" {
					w.WriteHeader(http.StatusTeapot)
					return
				}
				w.WriteHeader(tt.code)
			}))
			defer srv.Close()
			err := probeRegistry(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
			if (err != nil) != tt.wantErr {
				t.Errorf("probeRegistry = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		if err := probeRegistry(context.Background(), closedAddr(t)); err == nil {
			t.Error("probeRegistry on a closed port succeeded")
		}
	})
}

func TestPingDocker(t *testing.T) {
	t.Parallel()
	ping := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/_ping" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.WriteHeader(code)
			fmt.Fprint(w, "OK")
		})
	}
	unixServer := func(t *testing.T, h http.Handler) string {
		t.Helper()
		sock := filepath.Join(t.TempDir(), "d.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)
		return "unix://" + sock
	}
	tcpServer := func(t *testing.T, h http.Handler) string {
		t.Helper()
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
	}
	tests := []struct {
		name    string
		host    func(t *testing.T) string
		wantErr bool
	}{
		{"unix ok", func(t *testing.T) string { return unixServer(t, ping(http.StatusOK)) }, false},
		{"unix error", func(t *testing.T) string { return unixServer(t, ping(http.StatusInternalServerError)) }, true},
		{"unix missing socket", func(t *testing.T) string { return "unix://" + filepath.Join(t.TempDir(), "none.sock") }, true},
		{"tcp ok", func(t *testing.T) string { return tcpServer(t, ping(http.StatusOK)) }, false},
		{"tcp closed", func(t *testing.T) string { return "tcp://" + closedAddr(t) }, true},
		{"ssh unsupported", func(*testing.T) string { return "ssh://user@host" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := pingDocker(context.Background(), tt.host(t))
			if (err != nil) != tt.wantErr {
				t.Errorf("pingDocker = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		required bool
		want     string
	}{
		{false, "skip"},
		{true, "fail"},
	}
	for _, tt := range tests {
		r := &recorder{TB: t}
		unavailable(r, tt.required, "no %s", "registry")
		if got := r.verdict(); got != tt.want {
			t.Errorf("unavailable(required=%v): %s, want %s", tt.required, got, tt.want)
		}
		if !strings.Contains(r.msg, "no registry") {
			t.Errorf("unavailable(required=%v) message %q lacks the cause", tt.required, r.msg)
		}
	}
}

// TestRegistryHelper drives Registry through the environment, so it cannot be parallel.
func TestRegistryHelper(t *testing.T) {
	up := httptest.NewServer(statusHandler(http.StatusOK))
	defer up.Close()
	upAddr := strings.TrimPrefix(up.URL, "http://")
	down := closedAddr(t)
	tests := []struct {
		name, addr, required string
		want, wantHost       string
	}{
		{"answers", upAddr, "", "ok", upAddr},
		{"answers required", upAddr, "1", "ok", upAddr},
		{"absent", down, "", "skip", ""},
		{"absent required", down, "1", "fail", ""},
		{"not loopback", "192.0.2.1:5000", "", "fail", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvRegistry, tt.addr)
			t.Setenv(EnvRequired, tt.required)
			want, wantHost := tt.want, tt.wantHost
			if testing.Short() {
				want, wantHost = "skip", ""
			}
			r := &recorder{TB: t}
			host := Registry(r)
			if got := r.verdict(); got != want || host != wantHost {
				t.Errorf("Registry() = %q, %s (%s); want %q, %s", host, got, r.msg, wantHost, want)
			}
			if want == "skip" && !testing.Short() && !strings.Contains(r.msg, "scripts/world.sh up") {
				t.Errorf("skip message %q does not say how to bring the world up", r.msg)
			}
		})
	}
}

func TestDockerDisabled(t *testing.T) {
	t.Setenv(EnvDocker, "0")
	t.Setenv(EnvRequired, "1")
	r := &recorder{TB: t}
	if cli := Docker(r); cli != "" || r.verdict() != "skip" {
		t.Errorf("Docker() with %s=0 = %q, %s; want a skip", EnvDocker, cli, r.verdict())
	}
}
