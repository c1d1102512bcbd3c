package apiserver

import (
	"net/http"
	"strings"
	"testing"
)

// TestContainerEndpoints checks that the container, volume and network endpoints the
// docker CLI calls answer as a daemon with none would, or with a sentence saying why
// not, and never "page not found".
func TestContainerEndpoints(t *testing.T) {
	t.Parallel()
	ts := newImageTestServer(t)
	tests := []struct {
		method, path string
		status       int
		body         string // exact body, or a substring when it starts with "~"
	}{
		{"GET", "/v1.41/containers/json?all=1", 200, "[]\n"},
		{"GET", "/containers/json", 200, "[]\n"},
		{"POST", "/v1.41/containers/create?name=x", 501, "~kiln builds images and runs no containers: docker run"},
		{"GET", "/v1.41/containers/abc/json", 404, "~No such container: abc (kiln builds images"},
		{"POST", "/v1.41/containers/abc/start", 404, "~No such container: abc"},
		{"POST", "/v1.41/containers/abc/exec", 404, "~No such container: abc"},
		{"DELETE", "/v1.41/containers/abc?force=1", 404, "~No such container: abc"},
		{"POST", "/v1.41/containers/prune", 200, `{"ContainersDeleted":null,"SpaceReclaimed":0}` + "\n"},
		{"POST", "/v1.41/exec/e1/start", 404, "~No such exec instance: e1"},
		{"GET", "/v1.41/volumes", 200, `{"Volumes":[],"Warnings":null}` + "\n"},
		{"POST", "/v1.41/volumes/create", 501, "~no volumes or networks to create"},
		{"GET", "/v1.41/volumes/v1", 404, "~get v1: no such volume"},
		{"POST", "/v1.41/volumes/prune", 200, `{"VolumesDeleted":null,"SpaceReclaimed":0}` + "\n"},
		{"GET", "/v1.41/networks", 200, "[]\n"},
		{"POST", "/v1.41/networks/create", 501, "~no volumes or networks to create"},
		{"GET", "/v1.41/networks/bridge", 404, "~network bridge not found"},
		{"POST", "/v1.41/networks/prune", 200, `{"NetworksDeleted":null}` + "\n"},
	}
	for _, tt := range tests {
		resp, raw := ts.call(t, tt.method, tt.path, nil, nil)
		body := string(raw)
		ok := body == tt.body
		if want, sub := strings.CutPrefix(tt.body, "~"); sub {
			ok = strings.Contains(body, want)
		}
		if resp.StatusCode != tt.status || !ok || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
	}
	// An endpoint kiln does not know is still 404 page not found.
	if resp, raw := ts.call(t, http.MethodGet, "/v1.41/swarm", nil, nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(raw), "page not found") {
		t.Errorf("GET /swarm: %d %s", resp.StatusCode, raw)
	}
}
