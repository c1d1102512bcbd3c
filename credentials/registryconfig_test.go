package credentials_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/credentials"
)

// resolve returns what kc answers for ref's registry: "anonymous" or "user:password".
func resolve(t *testing.T, kc authn.Keychain, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(r.Context())
	if err != nil {
		t.Fatal(err)
	}
	if auth == authn.Anonymous {
		return "anonymous"
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdentityToken != "" {
		return "token:" + cfg.IdentityToken
	}
	return cfg.Username + ":" + cfg.Password
}

func b64(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

func TestFromRegistryConfig(t *testing.T) {
	t.Parallel()
	refs := []string{"127.0.0.1:5011/a/b:1", "127.0.0.1:5010/a", "busybox", "ghcr.io/x/y", "quay.io/z"}
	tests := []struct {
		name   string
		header string
		want   []string // per ref
	}{{
		name:   "the CLI's capture (build-with-auth)",
		header: "eyIxMjcuMC4wLjE6NTAxMSI6eyJ1c2VybmFtZSI6ImFwaWNhcCIsInBhc3N3b3JkIjoiYXBpY2FwcGFzcyIsInNlcnZlcmFkZHJlc3MiOiIxMjcuMC4wLjE6NTAxMSJ9fQ==",
		want:   []string{"apicap:apicappass", "anonymous", "anonymous", "anonymous", "anonymous"},
	}, {
		name:   "no credentials: e30=",
		header: "e30=",
		want:   []string{"anonymous", "anonymous", "anonymous", "anonymous", "anonymous"},
	}, {
		name:   "no header",
		header: "",
		want:   []string{"anonymous", "anonymous", "anonymous", "anonymous", "anonymous"},
	}, {
		name: "hub's historical key, auth field, URL keys, identity token",
		header: b64(`{"https://index.docker.io/v1/":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("hub:pw")) + `"},` +
			`"https://ghcr.io/v2/":{"identitytoken":"tok"},"quay.io":{"username":"q","password":"p","email":"e@x"}}`),
		want: []string{"anonymous", "anonymous", "hub:pw", "token:tok", "q:p"},
	}, {
		name:   "the bare host wins over a URL key",
		header: b64(`{"https://quay.io":{"username":"url","password":"1"},"quay.io":{"username":"host","password":"2"}}`),
		want:   []string{"anonymous", "anonymous", "anonymous", "anonymous", "host:2"},
	}, {
		name:   "unpadded and standard base64",
		header: base64.RawStdEncoding.EncodeToString([]byte(`{"docker.io":{"username":"u","password":"p"}}`)),
		want:   []string{"anonymous", "anonymous", "u:p", "anonymous", "anonymous"},
	}, {
		name:   "empty entries are skipped",
		header: b64(`{"127.0.0.1:5010":{}}`),
		want:   []string{"anonymous", "anonymous", "anonymous", "anonymous", "anonymous"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kc, err := credentials.FromRegistryConfig(tt.header)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range refs {
				got = append(got, resolve(t, kc, r))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("credentials per registry (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRegistryConfigFallsThrough checks the composition the server uses: request
// credentials first, the server's keychain for registries the request does not name.
func TestRegistryConfigFallsThrough(t *testing.T) {
	t.Parallel()
	req, err := credentials.FromRegistryConfig(b64(`{"127.0.0.1:5011":{"username":"req","password":"1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	server, err := credentials.FromRegistryConfig(b64(`{"127.0.0.1:5011":{"username":"srv","password":"2"},"127.0.0.1:5010":{"username":"srv","password":"3"}}`))
	if err != nil {
		t.Fatal(err)
	}
	kc := authn.NewMultiKeychain(req, server)
	if got := resolve(t, kc, "127.0.0.1:5011/x"); got != "req:1" {
		t.Errorf("5011: %s, want the request's credentials", got)
	}
	if got := resolve(t, kc, "127.0.0.1:5010/x"); got != "srv:3" {
		t.Errorf("5010: %s, want the server's credentials", got)
	}
}

func TestFromRegistryConfigErrors(t *testing.T) {
	t.Parallel()
	secret := "s3cr3t-password"
	tests := []struct{ name, header, want string }{
		{"not base64", "%%%" + secret, "not base64"},
		{"not JSON", b64(`{"r":{"password":"` + secret + `"`), "invalid JSON"},
		{"wrong type", b64(`{"r":"` + secret + `"}`), "invalid JSON"},
		{"bad auth field", b64(`{"r":{"auth":"` + secret + `!"}}`), "auth field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := credentials.FromRegistryConfig(tt.header)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}

func TestFromRegistryAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		want   []string // for 127.0.0.1:5011, then quay.io
	}{
		{"the CLI's capture (push-auth)", "eyJ1c2VybmFtZSI6ImFwaWNhcCIsInBhc3N3b3JkIjoiYXBpY2FwcGFzcyIsInNlcnZlcmFkZHJlc3MiOiIxMjcuMC4wLjE6NTAxMSJ9", []string{"apicap:apicappass", "anonymous"}},
		{"no credentials", "e30=", []string{"anonymous", "anonymous"}},
		{"no server address: any registry", b64(`{"username":"u","password":"p"}`), []string{"u:p", "u:p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kc, err := credentials.FromRegistryAuth(tt.header)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{resolve(t, kc, "127.0.0.1:5011/a"), resolve(t, kc, "quay.io/b")}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := credentials.FromRegistryAuth("!!"); err == nil {
		t.Error("a header that is not base64 was accepted")
	}
}
