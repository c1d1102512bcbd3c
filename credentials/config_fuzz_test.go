package credentials

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// FuzzDockerConfig reads arbitrary docker config.json content the way a pull does
// (Default, the docker CLI's loader behind go-containerregistry) and the same bytes as
// an X-Registry-Config and X-Registry-Auth header: each may fail but must never panic,
// and no error may quote the secrets it was given.
func FuzzDockerConfig(f *testing.F) {
	for _, seed := range []string{
		`{"auths":{"127.0.0.1:5000":{"auth":"a2lsbjpzZWNyZXQ="}}}`,
		`{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}},"credHelpers":{"gcr.io":"gcloud"}}`,
		`{"credsStore":"desktop","auths":{"x":{}}}`,
		`{"auths":{"reg":{"auth":"!!notbase64"}}}`,
		`{"auths":{"reg":{"auth":"bm9jb2xvbg=="}}}`,
		`{"127.0.0.1:5000":{"username":"kiln","password":"secret","serveraddress":"127.0.0.1:5000"}}`,
		`{"username":"kiln","password":"secret","identitytoken":"tok"}`,
		`{`, `null`, `[]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, config string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", dir)
		t.Setenv("PATH", t.TempDir()) // a credsStore or credHelper the config names runs nothing
		header := base64.URLEncoding.EncodeToString([]byte(config))
		check := func(what string, err error) {
			if err != nil && strings.Contains(config, `"password":"secret"`) && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s error quotes the password: %v", what, err)
			}
		}
		for _, reg := range []string{"127.0.0.1:5000", "index.docker.io", "gcr.io", "reg"} {
			r, err := name.NewRegistry(reg)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := Default().Resolve(r)
			check("config.json", err)
			if err == nil {
				_, err = auth.Authorization()
				check("config.json authorization", err)
			}
			for kind, fn := range map[string]func(string) (authn.Keychain, error){
				"X-Registry-Config": FromRegistryConfig, "X-Registry-Auth": FromRegistryAuth,
			} {
				kc, err := fn(header)
				check(kind, err)
				if err != nil {
					continue
				}
				auth, err := kc.Resolve(r)
				check(kind+" resolve", err)
				if err == nil {
					_, err = auth.Authorization()
					check(kind+" authorization", err)
				}
			}
		}
	})
}
