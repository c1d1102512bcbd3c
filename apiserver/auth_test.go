package apiserver

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/test/testworld"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	authReg := newTestRegistry(t, "apicap", "apicappass")
	openReg := newTestRegistry(t, "", "")
	// A loopback port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	ts := newImageTestServer(t)
	login := func(v any) string {
		raw, _ := json.Marshal(v)
		return string(raw)
	}
	tests := []struct {
		name   string
		body   string
		status int
		want   string // the whole body, or with a "~" prefix a part of it
	}{
		// [captured: login]
		{"right credentials", login(map[string]string{"username": "apicap", "password": "apicappass", "serveraddress": authReg}), 200,
			`{"IdentityToken":"","Status":"Login Succeeded"}`},
		{"address as a URL", login(map[string]string{"username": "apicap", "password": "apicappass", "serveraddress": "http://" + authReg + "/v2/"}), 200,
			`{"IdentityToken":"","Status":"Login Succeeded"}`},
		{"auth field instead of username and password", login(map[string]string{"auth": "YXBpY2FwOmFwaWNhcHBhc3M=", "serveraddress": authReg}), 200,
			`{"IdentityToken":"","Status":"Login Succeeded"}`},
		// [captured: login-bad], with newer daemons' 401
		{"wrong password", login(map[string]string{"username": "apicap", "password": "wrong", "serveraddress": authReg}), 401,
			`{"message":"login attempt to http://` + authReg + `/v2/ failed with status: 401 Unauthorized"}`},
		{"no credentials", login(map[string]string{"serveraddress": authReg}), 401,
			`{"message":"login attempt to http://` + authReg + `/v2/ failed with status: 401 Unauthorized"}`},
		{"registry without auth", login(map[string]string{"username": "u", "password": "p", "serveraddress": openReg}), 200,
			`{"IdentityToken":"","Status":"Login Succeeded"}`},
		{"registry down", login(map[string]string{"username": "u", "password": "p", "serveraddress": closed}), 500, "~login to " + closed},
		{"not JSON", "{nope", 400, `{"message":"invalid login request: the body must be a JSON AuthConfig"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := ts.call(t, http.MethodPost, "/v1.41/auth", strings.NewReader(tt.body), http.Header{"Content-Type": {"application/json"}})
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if part, ok := strings.CutPrefix(tt.want, "~"); ok {
				if !strings.Contains(string(body), part) {
					t.Errorf("body %s lacks %q", body, part)
				}
			} else if string(body) != tt.want+"\n" {
				t.Errorf("body\n got %s\nwant %s", body, tt.want)
			}
			if strings.Contains(string(body), "apicappass") {
				t.Errorf("the answer quotes the password: %s", body)
			}
		})
	}
}

func TestRegistryHost(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                            name.DefaultRegistry,
		"https://index.docker.io/v1/": name.DefaultRegistry,
		"docker.io":                   name.DefaultRegistry,
		"registry-1.docker.io":        name.DefaultRegistry,
		"127.0.0.1:5011":              "127.0.0.1:5011",
		"http://127.0.0.1:5011/v2/":   "127.0.0.1:5011",
		"ghcr.io/owner":               "ghcr.io",
	}
	for in, want := range tests {
		if got := registryHost(in); got != want {
			t.Errorf("registryHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoginStalled: docker login through kiln serve to a registry that stalls (one
// that accepts and says nothing, or whose token endpoint sends headers and nothing) fails at the stall limit, naming the host and
// the limit, instead of hanging the CLI.
func TestLoginStalled(t *testing.T) {
	t.Parallel()
	silent := testworld.StallTCP(t)
	var tokenReg string
	tokenReg = strings.TrimPrefix(testworld.StallHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+tokenReg+`/token",service="kiln-test"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}), func(r *http.Request) bool { return r.URL.Path == "/token" }), "http://")
	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Net: nettimeout.Limits{Connect: time.Second, Stall: time.Second}}))
	for name, reg := range map[string]string{"TCP accept and no bytes": silent, "token endpoint": tokenReg} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := `{"username":"u","password":"p","serveraddress":"` + reg + `"}`
			start := time.Now()
			resp, got := ts.call(t, http.MethodPost, "/v1.41/auth", strings.NewReader(body), http.Header{"Content-Type": {"application/json"}})
			want := reg + ": no data for 1s (--net-stall-timeout)"
			if resp.StatusCode == http.StatusOK || !strings.Contains(string(got), want) {
				t.Errorf("HTTP %d %s, want an error saying %q", resp.StatusCode, got, want)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("login gave up after %s", took)
			}
		})
	}
}
