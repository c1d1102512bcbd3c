package credentials_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// cloudEnv is every environment variable a cloud SDK reads to find credentials or an
// endpoint. isolateCloud unsets them all so the machine's own identity never takes
// part in a test.
var cloudEnv = []string{
	"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST", "GCE_METADATA_IP",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC", "AWS_ECR_CACHE_DIR",
	"AWS_ECR_DISABLE_CACHE", "AWS_USE_FIPS_ENDPOINT",
	"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CERTIFICATE_PATH",
	"AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_ENVIRONMENT", "AZURE_ENVIRONMENT_FILEPATH",
	"AZURE_FEDERATED_TOKEN", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AD_RESOURCE", "MSI_ENDPOINT", "MSI_SECRET",
	"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
}

// isolateCloud empties the docker config (isolateEnv), unsets every cloud variable
// and points each metadata service at blackhole, a loopback URL, so that nothing a
// test does can reach the machine's cloud identity or the internet: the GCE metadata
// server, the EC2 instance metadata service (disabled outright) and Azure's managed
// identity endpoint. gcloud is kept off PATH.
func isolateCloud(t *testing.T, blackhole string) (dockerConfig string) {
	t.Helper()
	dir := isolateEnv(t)
	for _, k := range cloudEnv {
		t.Setenv(k, "") // restores the old value after the test
		os.Unsetenv(k)  // some helpers test presence, not emptiness
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(blackhole, "http://"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ECR_CACHE_DIR", t.TempDir())
	t.Setenv("AWS_ENDPOINT_URL_ECR", blackhole)
	t.Setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", blackhole)
	t.Setenv("MSI_ENDPOINT", blackhole+"/msi")
	return dir
}

// counter is a hand-written fake of every cloud metadata and token service at once:
// it refuses every request (404) and counts them, so a test can tell whether a
// keychain asked a cloud at all.
func counter(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

// debugLog is a logger recording every entry, debug included.
func debugLog() (*logrus.Logger, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return l, hook
}

// logText is everything hook recorded, messages and fields.
func logText(hook *logtest.Hook) string {
	var b strings.Builder
	for _, e := range hook.AllEntries() {
		s, _ := e.String()
		b.WriteString(s)
	}
	return b.String()
}

// authOf is what kc answers for ref: "anonymous", "user:password" or "token:<identity token>".
func authOf(t *testing.T, kc authn.Keychain, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(r.Context())
	if err != nil {
		t.Fatalf("Resolve(%s): %v", ref, err)
	}
	if auth == authn.Anonymous {
		return "anonymous"
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatalf("Authorization(%s): %v", ref, err)
	}
	if cfg.IdentityToken != "" {
		return "token:" + cfg.IdentityToken
	}
	return cfg.Username + ":" + cfg.Password
}
