package credentials_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/credentials"
)

const (
	fakeGoogleToken    = "ya29.kiln-fake-access-token"
	testRefreshToken   = "kiln-google-refresh-token"
	testClientSecret   = "kiln-google-client-secret"
	testServiceAccount = "kiln@kiln-test.iam.gserviceaccount.com"
)

// fakeGoogleOAuth is a hand-written fake of Google's OAuth 2.0 token endpoint
// (oauth2.googleapis.com/token). It grants an access token for an authorized_user
// refresh token, and for a service account's JWT assertion whose RS256 signature it
// checks against the key the test generated. refuse makes it answer 400 quoting the
// request, as a careless server might.
type fakeGoogleOAuth struct {
	key    *rsa.PublicKey
	refuse bool
	calls  atomic.Int64
}

func (f *fakeGoogleOAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if f.refuse {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"refused %s"}`, r.Form.Encode())
		return
	}
	var ok bool
	switch r.Form.Get("grant_type") {
	case "refresh_token":
		ok = r.Form.Get("refresh_token") == testRefreshToken && r.Form.Get("client_secret") == testClientSecret
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		ok = f.validJWT(r.Form.Get("assertion"))
	}
	if !ok {
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, fakeGoogleToken)
}

// validJWT checks the assertion's signature and that it names the service account
// and the cloud-platform scope.
func (f *fakeGoogleOAuth) validJWT(assertion string) bool {
	parts := strings.Split(assertion, ".")
	if f.key == nil || len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(f.key, crypto.SHA256, sum[:], sig) != nil {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Iss, Scope string
	}
	return json.Unmarshal(raw, &claims) == nil && claims.Iss == testServiceAccount &&
		strings.Contains(claims.Scope, "cloud-platform")
}

// googleCredentialsFile writes an Application Default Credentials file of the given
// type whose token_uri is the fake, and points GOOGLE_APPLICATION_CREDENTIALS at it.
func googleCredentialsFile(t *testing.T, kind string) *fakeGoogleOAuth {
	t.Helper()
	f := &fakeGoogleOAuth{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	creds := map[string]string{"type": kind, "token_uri": srv.URL + "/token"}
	switch kind {
	case "authorized_user":
		creds["client_id"] = "kiln-client.apps.googleusercontent.com"
		creds["client_secret"] = testClientSecret
		creds["refresh_token"] = testRefreshToken
	case "service_account":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		f.key = &key.PublicKey
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		creds["project_id"] = "kiln-test"
		creds["private_key_id"] = "kiln-key-1"
		creds["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		creds["client_email"] = testServiceAccount
		creds["client_id"] = "1234567890"
	}
	raw, err := json.Marshal(creds)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "adc.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	return f
}

// TestGoogleTokenExchange runs go-containerregistry's Application Default
// Credentials authenticator against the fake token endpoint, for both kinds of key
// file. The tests in this file use t.Setenv and therefore cannot run in parallel.
func TestGoogleTokenExchange(t *testing.T) {
	for _, kind := range []string{"authorized_user", "service_account"} {
		t.Run(kind, func(t *testing.T) {
			blackhole, hits := counter(t)
			isolateCloud(t, blackhole)
			oauth := googleCredentialsFile(t, kind)
			kc := credentials.Cloud()
			for _, ref := range []string{"gcr.io/kiln-test/app", "europe-docker.pkg.dev/kiln-test/repo/app"} {
				if got := authOf(t, kc, ref); got != "_token:"+fakeGoogleToken {
					t.Fatalf("%s: %s, want the fake's access token", ref, got)
				}
			}
			if n := oauth.calls.Load(); n != 1 {
				t.Errorf("fake token endpoint called %d times, want 1 (the token is reused)", n)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the metadata server was probed %d times despite a credentials file", n)
			}
		})
	}
}

// TestGoogleErrorHidesSecrets: a token endpoint that quotes the refresh token and
// client secret back in its refusal does not get them into kiln's log.
func TestGoogleErrorHidesSecrets(t *testing.T) {
	blackhole, _ := counter(t)
	isolateCloud(t, blackhole)
	oauth := googleCredentialsFile(t, "authorized_user")
	oauth.refuse = true
	log, hook := debugLog()
	if got := authOf(t, credentials.Cloud(credentials.WithLogger(log)), "gcr.io/kiln-test/app"); got != "anonymous" {
		t.Fatalf("%s, want anonymous after a refusal", got)
	}
	s := logText(hook)
	if !strings.Contains(s, "invalid_grant") {
		t.Errorf("the log does not say why: %q", s)
	}
	for _, secret := range []string{testRefreshToken, testClientSecret} {
		if strings.Contains(s, secret) {
			t.Errorf("the log reveals %s: %q", secret, s)
		}
	}
}

// TestGoogleConcurrentPulls: pulls resolving at once share one token exchange.
func TestGoogleConcurrentPulls(t *testing.T) {
	blackhole, _ := counter(t)
	isolateCloud(t, blackhole)
	oauth := googleCredentialsFile(t, "authorized_user")
	kc := credentials.Chain()
	repo := mustRepo(t, "gcr.io/kiln-test/app")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			auth, err := kc.Resolve(repo)
			if err == nil {
				var cfg *authn.AuthConfig
				if cfg, err = auth.Authorization(); err == nil && cfg.Password != fakeGoogleToken {
					err = fmt.Errorf("token %q", cfg.Password)
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := oauth.calls.Load(); n != 1 {
		t.Errorf("fake token endpoint called %d times, want 1", n)
	}
}
