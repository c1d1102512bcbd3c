package output_test

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder/output"
)

// newRegistry serves an in-process registry behind wrap (nil = none) and returns its
// host:port.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestPushWritesEveryReference(t *testing.T) {
	t.Parallel()
	host := newRegistry(t, nil)
	img := randomImage(t)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	refs := []name.Reference{
		mustRef(t, host+"/app:v1"),
		mustRef(t, host+"/app:latest"),
		mustRef(t, host+"/other/app:v1"),
	}

	var mu sync.Mutex
	var updates int
	got, err := output.Push(context.Background(), img, refs, output.WithProgress(func(name.Reference, v1.Update) {
		mu.Lock()
		updates++
		mu.Unlock()
	}))
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got != want {
		t.Errorf("Push returned digest %s, want %s", got, want)
	}
	for _, ref := range refs {
		pulled, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pulling %s back: %v", ref, err)
		}
		if d, _ := pulled.Digest(); d != want {
			t.Errorf("%s has digest %s, want %s", ref, d, want)
		}
		if err := validate.Image(pulled); err != nil {
			t.Errorf("%s does not validate: %v", ref, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if updates == 0 {
		t.Error("no progress updates were reported")
	}
}

// failFirstManifestPuts answers the first n manifest uploads with 400, a status
// go-containerregistry does not retry itself, so only Push's retries can recover.
func failFirstManifestPuts(n int64, puts *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				if puts.Add(1) <= n {
					http.Error(w, `{"errors":[{"code":"MANIFEST_INVALID","message":"try again"}]}`, http.StatusBadRequest)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPushRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int64
		retries  int
		wantErr  bool
		wantPuts int64
	}{
		{name: "no failure", failures: 0, retries: 0, wantPuts: 1},
		{name: "failure without retries", failures: 1, retries: 0, wantErr: true, wantPuts: 1},
		{name: "recovers within retries", failures: 2, retries: 2, wantPuts: 3},
		{name: "retries exhausted", failures: 3, retries: 2, wantErr: true, wantPuts: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var puts atomic.Int64
			host := newRegistry(t, failFirstManifestPuts(tt.failures, &puts))
			_, err := output.Push(context.Background(), randomImage(t), []name.Reference{mustRef(t, host+"/app:v1")},
				output.WithRetries(tt.retries), output.WithRetryBackoff(time.Millisecond))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Push: err = %v, want error %v", err, tt.wantErr)
			}
			if got := puts.Load(); got != tt.wantPuts {
				t.Errorf("manifest PUTs = %d, want %d", got, tt.wantPuts)
			}
		})
	}
}

func TestPushDoesNotRetryRefusedCredentials(t *testing.T) {
	t.Parallel()
	var pings atomic.Int64
	host := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				pings.Add(1)
			}
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "right" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	kc := staticKeychain{&authn.Basic{Username: "user", Password: "wrong"}}
	_, err := output.Push(context.Background(), randomImage(t), []name.Reference{mustRef(t, host+"/app:v1")},
		output.WithKeychain(kc), output.WithRetries(5), output.WithRetryBackoff(time.Millisecond))
	if err == nil {
		t.Fatal("Push with wrong credentials succeeded")
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error reveals the password: %v", err)
	}
	if got := pings.Load(); got > 2 {
		t.Errorf("registry pinged %d times; a refused credential must not be retried", got)
	}

	// The right credentials through the same option succeed.
	kc = staticKeychain{&authn.Basic{Username: "user", Password: "right"}}
	if _, err := output.Push(context.Background(), randomImage(t), []name.Reference{mustRef(t, host+"/app:v1")},
		output.WithKeychain(kc)); err != nil {
		t.Fatalf("Push with the right credentials: %v", err)
	}
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

func TestPushSkipTLSVerifyPerRegistry(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	// A name outside go-containerregistry's localhost heuristics, so it insists on
	// https; the transport dials the test server whatever the name.
	const host = "kiln-tls.test:443"
	base := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}
	ref := mustRef(t, host+"/app:v1")

	tests := []struct {
		name    string
		skip    func(string) bool
		wantErr bool
	}{
		{name: "verified", skip: nil, wantErr: true},
		{name: "other registry skipped", skip: func(r string) bool { return r == "elsewhere.test" }, wantErr: true},

		{name: "this registry skipped", skip: func(r string) bool { return r == host }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := output.Push(context.Background(), randomImage(t), []name.Reference{ref},
				output.WithTransport(base), output.WithSkipTLSVerify(tt.skip))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Push: err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "certificate") {
				t.Errorf("Push failed for another reason than the certificate: %v", err)
			}
		})
	}
}

func TestPushStopsOnCancel(t *testing.T) {
	t.Parallel()
	var puts atomic.Int64
	host := newRegistry(t, failFirstManifestPuts(100, &puts))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := output.Push(ctx, randomImage(t), []name.Reference{mustRef(t, host+"/app:v1")},
		output.WithRetries(100), output.WithRetryBackoff(time.Hour))
	if err == nil {
		t.Fatal("Push succeeded against a registry that always fails")
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Push took %s after its context ended", elapsed)
	}
}
