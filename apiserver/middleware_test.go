package apiserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/v1.41/nope", http.StatusNotFound},
		{http.MethodPost, "/v1.41/swarm/init", http.StatusNotFound},
		{http.MethodPost, "/_ping", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1.41/version", http.StatusMethodNotAllowed},
		{http.MethodPost, "/info", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, ts, tt.method, tt.path, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			// The CLI parses the message only with exactly this Content-Type.
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want exactly application/json", ct)
			}
			var msg struct{ Message string }
			if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.Message == "" {
				t.Errorf("body %q is not Docker's error shape (%v)", body, err)
			}
			if tt.wantStatus == http.StatusNotFound && msg.Message != "page not found" {
				t.Errorf("message %q, want page not found", msg.Message)
			}
		})
	}
}

func TestEveryResponseCarriesDockerHeaders(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, WithAuthToken("secret"))
	auth := http.Header{"Authorization": {"Bearer secret"}}
	for _, tt := range []struct {
		path   string
		header http.Header
		status int
	}{
		{"/_ping", nil, 200},
		{"/v1.41/version", auth, 200},
		{"/v1.41/nope", auth, 404},
		{"/v1.99/version", auth, 400},
		{"/v1.41/version", nil, 401},
	} {
		resp, _ := do(t, ts, http.MethodGet, tt.path, tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.status)
		}
		for k, want := range map[string]string{"Api-Version": "1.41", "Ostype": "linux", "Docker-Experimental": "false", "Server": "kiln/test (linux)"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s (%d): %s %q, want %q", tt.path, tt.status, k, got, want)
			}
		}
	}
}

func TestAuthToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, WithAuthToken("s3cret-token"))
	const unauthorized = `{"message":"unauthorized: kiln requires a bearer token"}` + "\n"
	tests := []struct {
		name, method, path, authorization string
		wantStatus                        int
	}{
		{"no header", "GET", "/v1.41/version", "", 401},
		{"wrong token", "GET", "/v1.41/version", "Bearer wrong", 401},
		{"token prefix", "GET", "/v1.41/version", "Bearer s3cret", 401},
		{"basic scheme", "GET", "/v1.41/version", "Basic czNjcmV0LXRva2Vu", 401},
		{"bare token", "GET", "/v1.41/version", "s3cret-token", 401},
		{"right token", "GET", "/v1.41/version", "Bearer s3cret-token", 200},
		{"scheme in lower case", "GET", "/info", "bearer s3cret-token", 200},
		{"unknown route without token", "GET", "/v1.41/nope", "", 401},
		{"ping", "GET", "/_ping", "", 200},
		{"versioned ping", "GET", "/v1.41/_ping", "", 200},
		{"head ping", "HEAD", "/_ping", "", 200},
		{"ping with a wrong token", "HEAD", "/_ping", "Bearer wrong", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h http.Header
			if tt.authorization != "" {
				h = http.Header{"Authorization": {tt.authorization}}
			}
			resp, body := do(t, ts, tt.method, tt.path, h)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 401 {
				if body != unauthorized {
					t.Errorf("body %q, want %q", body, unauthorized)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

// lockedBuffer is a log sink safe to read while handlers write to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// entries returns the JSON log lines written so far.
func (b *lockedBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// panicRouter is a router with the real middleware and routes that panic.
func panicRouter(s *Server) http.Handler {
	r := mux.NewRouter()
	s.systemRoutes(r)
	r.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	r.HandleFunc("/boom-mid-stream", func(w http.ResponseWriter, _ *http.Request) {
		st := newStream(w)
		st.Stream("Step 1/2 : FROM busybox\n")
		panic("boom after the first message")
	})
	return s.middleware(r)
}

func TestPanicBecomes500AndTheServerKeepsServing(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	s := New(WithLogger(log), WithVersion("test"))
	ts := httptest.NewServer(panicRouter(s))
	t.Cleanup(ts.Close)

	resp, body := do(t, ts, http.MethodGet, "/v1.41/boom", nil)
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("status %d, Content-Type %q; want 500 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if want := `{"message":"internal server error: boom"}` + "\n"; body != want {
		t.Errorf("body %q, want %q", body, want)
	}
	if resp.Header.Get("Api-Version") != "1.41" {
		t.Error("the 500 lacks Api-Version")
	}

	// A panic after the stream started cannot change the status: the connection is
	// cut so the client does not read a clean (successful-looking) end.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/boom-mid-stream", nil)
	if resp, err := ts.Client().Do(req); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Error("a stream whose handler panicked ended cleanly")
		}
	}

	if resp, body := do(t, ts, http.MethodGet, "/_ping", nil); resp.StatusCode != 200 || body != "OK" {
		t.Errorf("after the panics, /_ping answered %d %q", resp.StatusCode, body)
	}
	var panics int
	for _, e := range logs.entries(t) {
		if e["level"] == "error" && strings.Contains(e["msg"].(string), "handler panicked") {
			panics++
			if e["request_id"] == "" || e["request_id"] == nil {
				t.Errorf("panic log without a request ID: %v", e)
			}
		}
	}
	if panics != 2 {
		t.Errorf("%d panics logged, want 2", panics)
	}
}

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	ts := httptest.NewServer(New(WithLogger(log), WithVersion("test")).Handler())
	t.Cleanup(ts.Close)

	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	tests := []struct {
		name, sent string
		want       func(string) bool
	}{
		{"generated", "", hex16.MatchString},
		{"client's", "build-42", func(s string) bool { return s == "build-42" }},
		{"space replaced", "a b", hex16.MatchString},
		{"non-ASCII replaced", "caf\u00e9", hex16.MatchString},
		{"too long replaced", strings.Repeat("x", 200), hex16.MatchString},
	}
	for _, tt := range tests {
		var h http.Header
		if tt.sent != "" {
			h = http.Header{"X-Request-Id": {tt.sent}}
		}
		resp, _ := do(t, ts, http.MethodGet, "/v1.41/version?secret=hunter2", h)
		id := resp.Header.Get("X-Request-Id")
		if !tt.want(id) {
			t.Errorf("%s: X-Request-Id %q", tt.name, id)
		}
		var found bool
		for _, e := range logs.entries(t) {
			if e["request_id"] != id || e["msg"] != "request" {
				continue
			}
			found = true
			if e["method"] != "GET" || e["path"] != "/v1.41/version" || e["status"] != float64(200) || e["duration"] == nil {
				t.Errorf("%s: access log entry %v", tt.name, e)
			}
		}
		if !found {
			t.Errorf("%s: no access log entry with request_id %q", tt.name, id)
		}
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if strings.Contains(logs.buf.String(), "hunter2") {
		t.Error("the access log holds a query string value")
	}
}
