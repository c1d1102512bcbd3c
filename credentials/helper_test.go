package credentials_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/credentials"
)

// TestServeHelper speaks the credential-helper protocol as kaniko's image's helpers
// do: docker-credential-gcr answers gcr.io from the Google keychain (the fake token
// endpoint), and "not found" for hosts its cloud does not own and for other clouds'
// helpers; list is empty; store and erase change nothing.
func TestServeHelper(t *testing.T) {
	blackhole, _ := counter(t)
	isolateCloud(t, blackhole)
	googleCredentialsFile(t, "service_account")
	ctx := context.Background()
	serve := func(helper, action, in string) (string, error) {
		var out bytes.Buffer
		err := credentials.ServeHelper(ctx, helper, action, strings.NewReader(in), &out)
		return out.String(), err
	}

	out, err := serve("gcr", "get", "https://gcr.io\n")
	if err != nil {
		t.Fatalf("gcr get gcr.io: %v", err)
	}
	var got struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("answer %q: %v", out, err)
	}
	if got.ServerURL != "https://gcr.io" || got.Username != "_token" || got.Secret != fakeGoogleToken {
		t.Errorf("gcr get gcr.io = %+v, want the fake's token", got)
	}
	for _, tc := range []struct{ helper, in string }{
		{"gcr", "127.0.0.1:5000"},                                     // not Google's
		{"ecr-login", "gcr.io"},                                       // another cloud's helper
		{"acr-env", "https://index.docker.io/v1/"},                    // nobody's
		{"ecr-login", "123456789012.dkr.ecr.us-east-1.amazonaws.com"}, // no AWS credentials here
		{"gcr", ""},
	} {
		if out, err := serve(tc.helper, "get", tc.in); !credentials.NotFound(err) || out != "" {
			t.Errorf("%s get %q = %q, %v; want not found", tc.helper, tc.in, out, err)
		}
	}
	if out, err := serve("ecr-login", "list", ""); err != nil || out != "{}\n" {
		t.Errorf("list = %q, %v", out, err)
	}
	for _, action := range []string{"store", "erase"} {
		if _, err := serve("gcr", action, `{"ServerURL":"gcr.io","Username":"u","Secret":"s"}`); err != nil {
			t.Errorf("%s: %v", action, err)
		}
	}
	if _, err := serve("gcr", "delete", ""); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := serve("pass", "get", "gcr.io"); err == nil || credentials.NotFound(err) {
		t.Errorf("a helper kiln does not answer for: %v", err)
	}
	for program, want := range map[string]bool{"docker-credential-ecr-login": true, "docker-credential-gcr": true,
		"docker-credential-acr-env": true, "docker-credential-pass": false, "kiln": false, "executor": false} {
		if _, ok := credentials.HelperName(program); ok != want {
			t.Errorf("HelperName(%q) = %v", program, ok)
		}
	}
}
