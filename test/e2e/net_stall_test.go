package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestBuildNetworkStalls runs kiln build against loopback servers that accept and
// then stall, on every path a build fetches through: the base image's registry
// (TCP accept and no bytes; headers then nothing), its token endpoint, the
// destination registry, and ADD's URL. Each build fails within a few seconds of the
// 1s limit with an error naming the host and the limit, and leaves nothing in its
// temporary directory. Before the limits these builds hung forever.
func TestBuildNetworkStalls(t *testing.T) {
	testworld.RequireRoot(t)
	testworld.KilnBinary(t) // built now, so that the builds' times are the builds'
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }
	// A registry whose manifests stall (the pull), and one whose uploads stall (the push).
	pullReg := hostOf(testworld.StallHTTP(t, registry.New(), func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
	}))
	pushReg := hostOf(testworld.StallHTTP(t, registry.New(), func(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }))
	// A registry whose token endpoint stalls. It is the registry's own host: go-containerregistry
	// refuses a realm on another loopback address.
	var authReg string
	authReg = hostOf(testworld.StallHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="kiln-test"`, authReg))
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}), func(r *http.Request) bool { return r.URL.Path == "/token" }))
	tcp := testworld.StallTCP(t)
	files := testworld.StallHTTP(t, nil, nil)
	noHandshake := testworld.FullBacklog(t)

	stall := func(host string) string { return host + ": no data for 1s (--net-stall-timeout)" }
	tests := []struct {
		name       string
		dockerfile string
		args       []string
		want       string
	}{
		{name: "pull, headers then nothing", dockerfile: "FROM " + pullReg + "/base:1\n", want: stall(pullReg)},
		{name: "pull, TCP accept and no bytes", dockerfile: "FROM " + tcp + "/base:1\n", want: stall(tcp)},
		{name: "pull, no handshake", dockerfile: "FROM " + noHandshake + "/base:1\n", want: "connect to " + noHandshake + ": no connection within 1s (--net-connect-timeout)"},
		{name: "token endpoint", dockerfile: "FROM " + authReg + "/base:1\n", want: stall(authReg)},
		{name: "push", dockerfile: "FROM scratch\nCOPY f /f\n", args: []string{"--destination", pushReg + "/out:1"}, want: stall(pushReg)},
		{name: "ADD URL", dockerfile: "FROM scratch\nADD " + files + "/big.bin /big.bin\n", want: stall(hostOf(files))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctxDir := writeContext(t, map[string]string{"Dockerfile": tt.dockerfile, "f": "f\n"})
			tmp := t.TempDir()
			args := append([]string{"--context", ctxDir, "--state-dir", t.TempDir(), "--net-stall-timeout=1s", "--net-connect-timeout=1s"}, tt.args...)
			if len(tt.args) == 0 {
				args = append(args, "--no-push")
			}
			start := time.Now()
			out, code := kilnBuild(t, []string{"TMPDIR=" + tmp}, args...)
			took := time.Since(start)
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("kiln build exited %d after %s, want a failure saying %q:\n%s", code, took, tt.want, out)
			}
			if took > 15*time.Second {
				t.Errorf("kiln build took %s to give up on a 1s limit", took)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("left in TMPDIR: %v", left)
			}
		})
	}
}
