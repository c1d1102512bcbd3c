package apiserver

import (
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/test/testworld"
)

// TestBuildStallReleasesSlot: with one build slot, a build whose fetch stalls (a
// remote= context, an ADD URL, a base image's registry) fails at the stall limit
// naming the host and the limit, and the build queued behind it then runs.
// Without the limit the first build held the slot forever.
func TestBuildStallReleasesSlot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds do not run with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot builds need root")
	}
	stalled := testworld.StallHTTP(t, nil, nil)
	tcp := testworld.StallTCP(t)
	host := strings.TrimPrefix(stalled, "http://")
	tests := []struct {
		name  string
		query string
		body  []byte
		host  string
	}{
		{name: "remote= context", query: "remote=" + url.QueryEscape(stalled+"/context.tar"), host: host},
		{name: "ADD URL", body: contextTar(t, map[string]string{"Dockerfile": "FROM scratch\nADD " + stalled + "/big.bin /big.bin\n"}), host: host},
		{name: "base image registry", body: contextTar(t, map[string]string{"Dockerfile": "FROM " + tcp + "/base:1\n"}), host: tcp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newBuildServer(t, BuildConfig{MaxConcurrent: 1, Net: nettimeout.Limits{Connect: time.Second, Stall: time.Second}})
			var (
				wg     sync.WaitGroup
				first  *buildResponse
				second *buildResponse
				took   time.Duration
			)
			wg.Add(2)
			start := time.Now()
			go func() {
				defer wg.Done()
				first = postBuild(t, ts.URL, tt.query, tt.body, nil)
				took = time.Since(start)
			}()
			go func() {
				defer wg.Done()
				time.Sleep(200 * time.Millisecond) // queued behind the first
				second = postBuild(t, ts.URL, "t=after-stall:1", contextTar(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "f\n"}), nil)
			}()
			wg.Wait()
			want := tt.host + ": no data for 1s (--net-stall-timeout)"
			// The error is the 500's body (remote=, before the stream starts) or the
			// stream's last message.
			if got := first.body + first.last().Error; !strings.Contains(got, want) {
				t.Errorf("stalled build: HTTP %d, want an error saying %q:\n%s", first.status, want, got)
			}
			if took > 15*time.Second {
				t.Errorf("the stalled build took %s to fail", took)
			}
			if second.status != 200 || second.last().ErrorDetail != nil {
				t.Errorf("the build after the stalled one: HTTP %d\n%s", second.status, second.text())
			}
			if left, _ := os.ReadDir(ts.stateDir); len(left) > 0 {
				var names []string
				for _, e := range left {
					names = append(names, e.Name())
				}
				t.Errorf("left in the state directory: %v", names)
			}
		})
	}
}
