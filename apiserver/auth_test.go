package apiserver

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
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
