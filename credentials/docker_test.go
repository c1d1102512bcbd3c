package credentials_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/credentials"
)

const (
	testUser     = "kiln"
	testPassword = "s3cret-pa55"
)

// basicAuthRegistry serves an in-process registry that demands HTTP basic auth, as a
// private registry does, and holds one random image. It returns the image's reference.
func basicAuthRegistry(t *testing.T) name.Reference {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/test/image:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	auth := &authn.Basic{Username: testUser, Password: testPassword}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("seeding registry: %v", err)
	}
	return ref
}

// isolateEnv points every location the keychain reads at empty temp directories, so
// the machine's own credentials never leak into (or out of) a test.
func isolateEnv(t *testing.T) (dockerConfig string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	return dir
}

func writeConfig(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeHelper installs a fake docker-credential-<helper> on PATH that answers "get"
// with the test credentials for any server.
func writeHelper(t *testing.T, helper string) {
	t.Helper()
	bin := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat >/dev/null\necho '{\"Username\":%q,\"Secret\":%q}'\n", testUser, testPassword)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+helper), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// The tests below use t.Setenv and therefore cannot run in parallel.
func TestDefaultPullsWithConfiguredCredentials(t *testing.T) {
	ref := basicAuthRegistry(t)
	host := ref.Context().RegistryStr()
	basic := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))
	wrong := base64.StdEncoding.EncodeToString([]byte(testUser + ":nope"))

	tests := []struct {
		name    string
		config  string // config.json; "" = none
		helper  string // fake credential helper to install
		wantErr bool
	}{
		{name: "no config is anonymous", wantErr: true},
		{name: "auths entry", config: fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, basic)},
		{name: "auths entry with scheme", config: fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, host, basic)},
		{name: "wrong password", config: fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, wrong), wantErr: true},
		{name: "other registry only", config: fmt.Sprintf(`{"auths":{"registry.example":{"auth":%q}}}`, basic), wantErr: true},
		{name: "credHelpers", config: fmt.Sprintf(`{"credHelpers":{%q:"kilntest"}}`, host), helper: "kilntest"},
		{name: "credsStore", config: `{"credsStore":"kilnstore"}`, helper: "kilnstore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := isolateEnv(t)
			if tt.config != "" {
				writeConfig(t, dir, tt.config)
			}
			if tt.helper != "" {
				writeHelper(t, tt.helper)
			}
			_, err := remote.Image(ref, remote.WithAuthFromKeychain(credentials.Default()))
			if (err != nil) != tt.wantErr {
				t.Fatalf("pull with Default(): err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testPassword) {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestPullWithoutKeychainFails(t *testing.T) {
	ref := basicAuthRegistry(t)
	dir := isolateEnv(t)
	basic := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))
	writeConfig(t, dir, fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, ref.Context().RegistryStr(), basic))

	if _, err := remote.Image(ref); err == nil {
		t.Fatal("anonymous pull from a registry requiring auth succeeded")
	}
	if _, err := remote.Image(ref, remote.WithAuthFromKeychain(credentials.Default())); err != nil {
		t.Fatalf("pull with Default(): %v", err)
	}
}

func TestDefaultReportsBrokenHelper(t *testing.T) {
	ref := basicAuthRegistry(t)
	dir := isolateEnv(t)
	writeConfig(t, dir, fmt.Sprintf(`{"credHelpers":{%q:"kiln-missing-helper"}}`, ref.Context().RegistryStr()))

	_, err := credentials.Default().Resolve(ref.Context())
	if err == nil {
		t.Fatal("Resolve with a missing credential helper succeeded")
	}
	if !strings.Contains(err.Error(), ref.Context().RegistryStr()) {
		t.Errorf("error %q does not name the registry", err)
	}
}
