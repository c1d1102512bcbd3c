package credentials_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/credentials"
)

const (
	fakeECRToken   = "ecr-registry-token"
	testAccessKey  = "AKIDKILNTEST"
	testSecretKey  = "kiln-aws-secret-access-key"
	ecrTargetPfx   = "AmazonEC2ContainerRegistry_V20150921."
	ecrPublicTgt   = "SpencerFrontendService.GetAuthorizationToken"
	ecrTestAccount = "123456789012"
)

// fakeECRAPI is a hand-written fake of the ECR and ECR Public APIs' one operation
// kiln uses, GetAuthorizationToken (AWS JSON 1.1 protocol). fakeECR starts it, points
// the AWS SDK at it with AWS_ENDPOINT_URL_ECR[_PUBLIC] and gives the SDK static
// credentials, so the real helper signs and sends a real request to loopback.
type fakeECRAPI struct {
	calls  atomic.Int64
	refuse bool // answer AccessDeniedException, quoting what was sent
}

func fakeECR(t *testing.T) *fakeECRAPI {
	t.Helper()
	f := &fakeECRAPI{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_ECR", srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	return f
}

func (f *fakeECRAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	target := r.Header.Get("X-Amz-Target")
	authz := r.Header.Get("Authorization")
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch {
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		http.Error(w, `{"__type":"SerializationException"}`, http.StatusBadRequest)
		return
	case !strings.Contains(authz, "Credential="+testAccessKey+"/"):
		http.Error(w, `{"__type":"UnrecognizedClientException","message":"not signed"}`, http.StatusForbidden)
		return
	case f.refuse:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"AccessDeniedException","message":"denied: %s %s"}`, testSecretKey, authz)
		return
	}
	expires := float64(time.Now().Add(12 * time.Hour).Unix())
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + fakeECRToken))
	switch target {
	case ecrTargetPfx + "GetAuthorizationToken":
		var in struct {
			RegistryIDs []string `json:"registryIds"`
		}
		if err := json.Unmarshal(body, &in); err != nil || len(in.RegistryIDs) != 1 || !strings.Contains(authz, "/ecr/aws4_request") {
			http.Error(w, `{"__type":"InvalidParameterException"}`, http.StatusBadRequest)
			return
		}
		region := regionOf(authz)
		fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%v,"proxyEndpoint":"https://%s.dkr.ecr.%s.amazonaws.com"}]}`,
			token, expires, in.RegistryIDs[0], region)
	case ecrPublicTgt:
		fmt.Fprintf(w, `{"authorizationData":{"authorizationToken":%q,"expiresAt":%v}}`, token, expires)
	default:
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
	}
}

// regionOf reads the region from a SigV4 Authorization header's credential scope.
func regionOf(authz string) string {
	_, scope, _ := strings.Cut(authz, "Credential="+testAccessKey+"/")
	parts := strings.Split(scope, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestECRTokenExchange runs the real ECR helper client against the fake ECR API.
// The tests in this file use t.Setenv and therefore cannot run in parallel.
func TestECRTokenExchange(t *testing.T) {
	for _, ref := range []string{
		ecrTestAccount + ".dkr.ecr.eu-west-1.amazonaws.com/app",
		ecrTestAccount + ".dkr.ecr.us-east-1.amazonaws.com/team/app:v1",
		"public.ecr.aws/kiln/app",
	} {
		t.Run(ref, func(t *testing.T) {
			blackhole, _ := counter(t)
			isolateCloud(t, blackhole)
			ecr := fakeECR(t)
			kc := credentials.Cloud()
			if got := authOf(t, kc, ref); got != "AWS:"+fakeECRToken {
				t.Fatalf("%s, want the fake ECR API's token", got)
			}
			if n := ecr.calls.Load(); n != 1 {
				t.Errorf("fake ECR API called %d times, want 1", n)
			}
			// The helper's token cache (AWS_ECR_CACHE_DIR) answers the next lookup.
			if got := authOf(t, credentials.Cloud(), ref); got != "AWS:"+fakeECRToken {
				t.Fatalf("second lookup: %s", got)
			}
			if n := ecr.calls.Load(); n != 1 {
				t.Errorf("fake ECR API called %d times after a cached lookup, want 1", n)
			}
		})
	}
}

// TestECRErrorHidesSecrets: what is logged about a refused exchange never carries
// the AWS secret key, even when the service quotes it back.
func TestECRErrorHidesSecrets(t *testing.T) {
	blackhole, _ := counter(t)
	isolateCloud(t, blackhole)
	ecr := fakeECR(t)
	ecr.refuse = true
	log, hook := debugLog()
	kc := credentials.Cloud(credentials.WithLogger(log))
	if got := authOf(t, kc, ecrTestAccount+".dkr.ecr.us-east-1.amazonaws.com/app"); got != "anonymous" {
		t.Fatalf("%s, want anonymous after a refusal", got)
	}
	s := logText(hook)
	if !strings.Contains(s, "AccessDenied") {
		t.Errorf("the log does not say why: %q", s)
	}
	if strings.Contains(s, testSecretKey) {
		t.Errorf("the log reveals the AWS secret key: %q", s)
	}
}
