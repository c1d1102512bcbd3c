package testworld

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHAProxy: requests through HAProxy reach every backend in turn, and no haproxy
// is left once the test that started it has ended.
func TestHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts haproxy")
	}
	var backends []string
	for _, name := range []string{"a", "b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(srv.Close)
		backends = append(backends, strings.TrimPrefix(srv.URL, "http://"))
	}
	var addr string
	t.Run("balances", func(t *testing.T) {
		addr = HAProxy(t, backends...)
		seen := map[string]int{}
		for range 4 {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[string(body)]++
		}
		if seen["a"] != 2 || seen["b"] != 2 {
			t.Errorf("answers by backend %v, want 2 each (round robin)", seen)
		}
	})
	if addr != "" {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("haproxy still answers on %s after its test ended", addr)
		}
	}
}
