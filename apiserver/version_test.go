package apiserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestVersionRange(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tooNew := func(v string) string {
		return fmt.Sprintf(`{"message":"client version %s is too new. Maximum supported API version is 1.50"}`+"\n", v)
	}
	tooOld := func(v string) string {
		return fmt.Sprintf(`{"message":"client version %s is too old. Minimum supported API version is 1.12, please upgrade your client to a newer version"}`+"\n", v)
	}
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string // checked when set
	}{
		{"/version", 200, ""},
		{"/v1.41/version", 200, ""},
		{"/v1.50/version", 200, ""},
		{"/v1.12/version", 200, ""},
		{"/v1.30/version", 200, ""},
		{"/v1.51/version", 400, tooNew("1.51")},
		{"/v1.99/version", 400, tooNew("1.99")},
		{"/v2.0/version", 400, tooNew("2.0")},
		{"/v1.11/version", 400, tooOld("1.11")},
		{"/v1.9/version", 400, tooOld("1.9")}, // numerically below 1.12
		{"/v1/version", 400, tooOld("1")},
		// Not a version prefix: an unknown route.
		{"/v1.x/version", 404, `{"message":"page not found"}` + "\n"},
		{"/v1.41", 404, `{"message":"page not found"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, ts, http.MethodGet, tt.path, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if tt.wantStatus != 200 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q, want exactly application/json", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestAPIVersionReachesHandlers(t *testing.T) {
	t.Parallel()
	h := withAPIVersion(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %v", apiVersion(r.Context()), r.URL.Path, r.URL.EscapedPath(), versionAtLeast(r.Context(), "1.30"))
	}))
	tests := []struct {
		path, want string
	}{
		{"/v1.41/build", "1.41 /build /build true"},
		{"/v1.24/build", "1.24 /build /build false"},
		{"/build", "1.41 /build /build true"}, // unversioned: the default version
		// An escaped slash in an image name survives the prefix's removal.
		{"/v1.41/images/a%2Fb/json", "1.41 /images/a/b/json /images/a%2Fb/json true"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, tt.path, nil)
		pathBefore := req.URL.Path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("%s: handler saw %q, want %q", tt.path, got, tt.want)
		}
		if req.URL.Path != pathBefore {
			t.Errorf("%s: the caller's request was modified (path %q)", tt.path, req.URL.Path)
		}
	}
}

func TestSplitVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, version, rest string
	}{
		{"/v1.41/_ping", "1.41", "/_ping"},
		{"/v1.41/images/reg:5000/app/push", "1.41", "/images/reg:5000/app/push"},
		{"/_ping", "", "/_ping"},
		{"/version", "", "/version"},
		{"/v1.41", "", "/v1.41"},
		{"/vx/_ping", "", "/vx/_ping"},
	}
	for _, tt := range tests {
		v, rest := splitVersion(tt.path)
		if v != tt.version || rest != tt.rest {
			t.Errorf("splitVersion(%q) = %q, %q; want %q, %q", tt.path, v, rest, tt.version, tt.rest)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"1.41", "1.41", 0},
		{"1.9", "1.12", -1},
		{"1.50", "1.41", 1},
		{"1", "1.0", 0},
		{"2.0", "1.50", 1},
		{"1.41.1", "1.41", 1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
