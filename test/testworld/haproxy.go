package testworld

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxy starts Debian's haproxy (scripts/world.sh installs it) in front of backends
// (host:port on loopback), balancing HTTP requests round robin, and returns the
// loopback address it listens on. It is stopped, by its PID's process group, when the
// test ends. A missing haproxy skips the test (fails it when
// KILN_TEST_WORLD_REQUIRED=1).
func HAProxy(t testing.TB, backends ...string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		unavailable(t, required(), "testworld: no haproxy (scripts/world.sh up installs it): %v", err)
		return ""
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var servers strings.Builder
	for i, b := range backends {
		if host, _, err := net.SplitHostPort(b); err != nil || !net.ParseIP(host).IsLoopback() {
			t.Fatalf("testworld: haproxy backend %q is not a loopback host:port", b)
		}
		fmt.Fprintf(&servers, "    server pod%d %s\n", i, b)
	}
	// Builds stream for minutes: generous client and server timeouts. Per-request
	// balancing (mode http) spreads a docker CLI's requests as a Kubernetes Service
	// spreads its connections.
	cfg := fmt.Sprintf(`global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend fleet
    bind %s
    default_backend pods
backend pods
    balance roundrobin
%s`, addr, servers.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = log, log
	stop := Start(t, cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			stop()
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("testworld: haproxy did not listen on %s: %v\n%s", addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
