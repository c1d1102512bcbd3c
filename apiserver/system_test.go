package apiserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
)

// newTestServer serves a kiln API server over real HTTP (so Content-Length and HEAD
// behave as they do in production) with its log discarded.
func newTestServer(t *testing.T, opts ...Option) *httptest.Server {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := New(append([]Option{WithLogger(log), WithVersion("test")}, opts...)...)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, ts *httptest.Server, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, string(body)
}

func TestPing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	// dockerd 20.10's answer, header for header [captured: version, curl-ping].
	wantHeaders := map[string]string{
		"Api-Version":         "1.41",
		"Ostype":              "linux",
		"Docker-Experimental": "false",
		"Cache-Control":       "no-cache, no-store, must-revalidate",
		"Pragma":              "no-cache",
		"Content-Type":        "text/plain; charset=utf-8",
		"Server":              "kiln/test (linux)",
	}
	tests := []struct {
		method, path string
		wantBody     string
		wantLength   string
	}{
		{http.MethodHead, "/_ping", "", "0"},
		{http.MethodGet, "/_ping", "OK", "2"},
		{http.MethodHead, "/v1.41/_ping", "", "0"},
		{http.MethodGet, "/v1.41/_ping", "OK", "2"},
		{http.MethodGet, "/v1.50/_ping", "OK", "2"},
		{http.MethodGet, "/v1.12/_ping", "OK", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, ts, tt.method, tt.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			for k, want := range wantHeaders {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if got := resp.Header.Get("Content-Length"); got != tt.wantLength {
				t.Errorf("Content-Length %q, want %q", got, tt.wantLength)
			}
			if body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

// topLevelKeys returns a JSON object's keys in the order they were written.
func topLevelKeys(t *testing.T, body string) []string {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, body)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestVersion(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/version", "/v1.41/version", "/v1.24/version"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, ts, http.MethodGet, path, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			// dockerd's keys in dockerd's order [captured: version]; BuildTime is left
			// out when the binary does not know it.
			dockerd := []string{"Platform", "Components", "Version", "ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch", "KernelVersion", "BuildTime"}
			keys := topLevelKeys(t, body)
			want := slices.DeleteFunc(slices.Clone(dockerd), func(k string) bool { return k == "BuildTime" && !slices.Contains(keys, k) })
			if diff := cmp.Diff(want, keys); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}

			var got versionBody
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Version != "test" || got.APIVersion != "1.41" || got.MinAPIVersion != "1.12" ||
				got.Os != "linux" || got.Arch != runtime.GOARCH || got.GoVersion != runtime.Version() || got.KernelVersion == "" {
				t.Errorf("version body %+v", got)
			}
			if len(got.Components) != 1 || got.Components[0].Name != "Engine" || got.Components[0].Version != "test" {
				t.Fatalf("components %+v, want one Engine at version test", got.Components)
			}
			d := got.Components[0].Details
			for k, want := range map[string]string{"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux", "Arch": runtime.GOARCH, "Experimental": "false"} {
				if d[k] != want {
					t.Errorf("Details[%s] = %q, want %q", k, d[k], want)
				}
			}
		})
	}
}

func TestInfo(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	ts := newTestServer(t, WithStateDir(stateDir), WithAuthToken("tok"), WithBuildConfig(BuildConfig{
		Workspace:     builder.Workspace{Isolation: 1}, // chroot
		MaxConcurrent: 3,
	}))
	resp, body := do(t, ts, http.MethodGet, "/v1.41/info", http.Header{"Authorization": {"Bearer tok"}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q, want 200 application/json: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got infoBody
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if got.ID == "" || got.Containers != 0 || got.Images != 0 || got.Driver != "kiln" || got.OSType != "linux" ||
		got.NCPU != runtime.NumCPU() || got.MemTotal <= 0 || got.Name != host || got.ServerVersion != "test" ||
		got.DockerRootDir != stateDir || got.KernelVersion == "" || got.Architecture == "" || got.Swarm.LocalNodeState != "inactive" {
		t.Errorf("info %+v", got)
	}
	wantStatus := [][2]string{{"Isolation", "chroot"}, {"Max concurrent builds", "3"}, {"Push on build", "false"}, {"Auth token", "true"}}
	if diff := cmp.Diff(wantStatus, got.DriverStatus); diff != "" {
		t.Errorf("DriverStatus (-want +got):\n%s", diff)
	}
	// `docker info` ranges over these without nil checks; null would print nothing,
	// but the shape should be dockerd's.
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Labels", "SecurityOptions", "Warnings", "DriverStatus"} {
		if _, ok := raw[k].([]any); !ok {
			t.Errorf("%s is %v, want an array", k, raw[k])
		}
	}
}

func TestEngineIDIsStable(t *testing.T) {
	t.Parallel()
	a, b := engineID("vm", "/var/lib/kiln"), engineID("vm", "/var/lib/kiln")
	if a != b {
		t.Errorf("engineID differs between calls: %s, %s", a, b)
	}
	if c := engineID("vm", "/srv/kiln"); c == a {
		t.Errorf("two state directories share the ID %s", a)
	}
	if len(a) != 36 {
		t.Errorf("ID %q is not UUID-shaped", a)
	}
}

func TestParseOSRelease(t *testing.T) {
	t.Parallel()
	in := "# comment\nNAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n\nbroken line\n"
	want := map[string]string{"NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
	if diff := cmp.Diff(want, parseOSRelease([]byte(in))); diff != "" {
		t.Errorf("parseOSRelease (-want +got):\n%s", diff)
	}
}
