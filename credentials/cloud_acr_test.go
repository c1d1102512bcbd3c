package credentials_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-build/kiln/credentials"
)

const (
	acrTestRegistry = "kilntest.azurecr.io"
	testTenant      = "kiln-tenant"
	testClientID    = "kiln-client-id"
	testAzureSecret = "kiln-azure-client-secret"
	fakeAADToken    = "kiln-aad-access-token"
	fakeACRRefresh  = "kiln-acr-refresh-token"
	acrChildEnv     = "KILN_TEST_ACR_CHILD"
	acrChildWantEnv = "KILN_TEST_ACR_WANT"
)

// fakeAzureAD is a hand-written fake of Azure AD's token endpoint (client
// credentials grant, as adal sends it to <authority>/<tenant>/oauth2/token) and of
// the managed-identity endpoint (MSI_ENDPOINT). refuse answers 401 quoting the
// request, client secret included.
type fakeAzureAD struct {
	refuse bool
	calls  atomic.Int64
}

func (f *fakeAzureAD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if f.refuse {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"AADSTS7000215 refused %s"}`, r.Form.Encode())
		return
	}
	var ok bool
	switch r.URL.Path {
	case "/" + testTenant + "/oauth2/token":
		ok = r.Form.Get("grant_type") == "client_credentials" && r.Form.Get("client_id") == testClientID &&
			r.Form.Get("client_secret") == testAzureSecret
	case "/msi":
		ok = r.Header.Get("Metadata") == "true" && r.Form.Get("resource") != ""
	}
	if !ok {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	now := time.Now().Unix()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":"3600","expires_on":"%d","not_before":"%d","resource":%q}`,
		fakeAADToken, now+3600, now, r.Form.Get("resource"))
}

// fakeACRExchange is a hand-written fake of an Azure Container Registry's
// /oauth2/exchange endpoint, which trades an Azure AD access token for a registry
// refresh token.
func fakeACRExchange(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth2/exchange" || r.ParseForm() != nil || r.Form.Get("grant_type") != "access_token" ||
		r.Form.Get("access_token") != fakeAADToken || r.Form.Get("service") != acrTestRegistry {
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"refresh_token":%q}`, fakeACRRefresh)
}

// TestACRTokenExchange runs the real ACR helper through both of its steps. Azure AD
// is pointed at loopback with an Azure Stack environment file. The exchange, though,
// always goes to https://<registry>/oauth2/exchange, so the test runs in a child
// process whose HTTPS_PROXY is a fake CONNECT proxy that sends kilntest.azurecr.io to
// the fake registry, and whose SSL_CERT_FILE trusts the test's own CA: both settings
// are read once per process, hence the child.
func TestACRTokenExchange(t *testing.T) {
	if os.Getenv(acrChildEnv) == "1" {
		acrChild(t)
		return
	}
	tests := []struct {
		name   string
		secret bool // a service principal; else the managed identity
	}{
		{"service principal", true},
		{"managed identity", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, aad, proxied := acrWorld(t)
			env = append(env, acrChildWantEnv+"=token:"+fakeACRRefresh)
			if tt.secret {
				env = append(env, "AZURE_CLIENT_ID="+testClientID, "AZURE_CLIENT_SECRET="+testAzureSecret, "AZURE_TENANT_ID="+testTenant)
			}
			out, err := runChild(t, env)
			if err != nil || !strings.Contains(string(out), "--- PASS: TestACRTokenExchange") {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if aad.calls.Load() != 1 || proxied.Load() != 1 {
				t.Errorf("fake Azure AD called %d times, fake ACR %d times; want 1 and 1", aad.calls.Load(), proxied.Load())
			}
		})
	}
}

// TestACRErrorHidesSecrets: Azure AD refusing the service principal, quoting its
// secret back, leaves kiln anonymous and the secret out of the log.
func TestACRErrorHidesSecrets(t *testing.T) {
	blackhole, _ := counter(t)
	isolateCloud(t, blackhole)
	aad := &fakeAzureAD{refuse: true}
	srv := httptest.NewServer(aad)
	t.Cleanup(srv.Close)
	t.Setenv("AZURE_ENVIRONMENT", "AZURESTACKCLOUD")
	t.Setenv("AZURE_ENVIRONMENT_FILEPATH", azureEnvironmentFile(t, srv.URL))
	t.Setenv("AZURE_CLIENT_ID", testClientID)
	t.Setenv("AZURE_CLIENT_SECRET", testAzureSecret)
	t.Setenv("AZURE_TENANT_ID", testTenant)

	log, hook := debugLog()
	if got := authOf(t, credentials.Cloud(credentials.WithLogger(log)), acrTestRegistry+"/app"); got != "anonymous" {
		t.Fatalf("%s, want anonymous after a refusal", got)
	}
	s := logText(hook)
	if aad.calls.Load() == 0 || !strings.Contains(s, "401") {
		t.Errorf("the log does not say why: %q", s)
	}
	if strings.Contains(s, testAzureSecret) {
		t.Errorf("the log reveals the client secret: %q", s)
	}
}

// acrChild is the child process's half: resolve the registry and compare.
func acrChild(t *testing.T) {
	got := authOf(t, credentials.Cloud(), acrTestRegistry+"/app")
	if want := os.Getenv(acrChildWantEnv); got != want {
		t.Fatalf("resolved %q, want %q", got, want)
	}
}

// acrWorld starts the fakes and returns the child's environment: no cloud identity
// but what the test adds, Azure AD on loopback, the proxy and the CA.
func acrWorld(t *testing.T) (env []string, aad *fakeAzureAD, proxied *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	caPEM, leaf := testCA(t, acrTestRegistry)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	registry := httptest.NewUnstartedServer(http.HandlerFunc(fakeACRExchange))
	registry.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	registry.StartTLS()
	t.Cleanup(registry.Close)

	proxied = new(atomic.Int64)
	proxy := httptest.NewServer(connectProxy(t, acrTestRegistry+":443", registry.Listener.Addr().String(), proxied))
	t.Cleanup(proxy.Close)

	aad = &fakeAzureAD{}
	aadSrv := httptest.NewServer(aad)
	t.Cleanup(aadSrv.Close)
	blackhole, _ := counter(t)

	env = []string{
		acrChildEnv + "=1",
		"HOME=" + dir,
		"PATH=" + t.TempDir(),
		"HTTPS_PROXY=" + proxy.URL,
		"SSL_CERT_FILE=" + caFile,
		"AZURE_ENVIRONMENT=AZURESTACKCLOUD",
		"AZURE_ENVIRONMENT_FILEPATH=" + azureEnvironmentFile(t, aadSrv.URL),
		"MSI_ENDPOINT=" + aadSrv.URL + "/msi",
		"GCE_METADATA_HOST=" + strings.TrimPrefix(blackhole, "http://"),
		"AWS_EC2_METADATA_DISABLED=true",
		"DOCKER_CONFIG=" + t.TempDir(),
	}
	return env, aad, proxied
}

func runChild(t *testing.T, env []string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestACRTokenExchange$", "-test.v", "-test.count=1")
	cmd.Env = env
	return cmd.CombinedOutput()
}

// azureEnvironmentFile describes an Azure Stack cloud whose Azure AD is the fake.
func azureEnvironmentFile(t *testing.T, aadURL string) string {
	t.Helper()
	raw, err := json.Marshal(map[string]string{
		"name":                       "AzureStackCloud",
		"activeDirectoryEndpoint":    aadURL + "/",
		"resourceManagerEndpoint":    "https://management.kiln.test/",
		"tokenAudience":              "https://management.kiln.test/",
		"containerRegistryDNSSuffix": "azurecr.io",
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "azurestack.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// connectProxy is a hand-written fake HTTPS proxy: it answers CONNECT for host by
// tunnelling to addr, and refuses every other destination.
func connectProxy(t *testing.T, host, addr string, tunnels *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != host {
			http.Error(w, "kiln test proxy: destination not allowed", http.StatusForbidden)
			return
		}
		upstream, err := net.Dial("tcp", addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		tunnels.Add(1)
		fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go pipe(upstream, buf.Reader, conn)
		pipe(conn, upstream, upstream)
	})
}

// pipe copies src to dst, then closes closer so the other direction ends too.
func pipe(dst io.Writer, src io.Reader, closer io.Closer) {
	_, _ = io.Copy(dst, src)
	closer.Close()
}

// testCA makes a CA and a certificate for host signed by it.
func testCA(t *testing.T, host string) (caPEM []byte, leaf tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiln test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
