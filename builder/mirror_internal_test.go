package builder

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/nettimeout"
)

func TestPullCandidates(t *testing.T) {
	t.Parallel()
	mirrors := map[string][]string{
		"index.docker.io": {"m1.test", "m2.test:5000/hub"},
		"quay.io":         {"q.test"},
	}
	tests := []struct {
		name         string
		ref          string
		noMirrors    bool
		skipFallback bool
		want         []string
	}{
		{name: "no mirror settings", ref: "busybox:1.35", noMirrors: true, want: []string{"index.docker.io/library/busybox:1.35"}},
		{name: "registry without mirrors", ref: "gcr.io/p/app:v1", want: []string{"gcr.io/p/app:v1"}},
		{
			name: "docker.io mirrors in order, then docker.io",
			ref:  "busybox:1.35",
			want: []string{"m1.test/library/busybox:1.35", "m2.test:5000/hub/library/busybox:1.35", "index.docker.io/library/busybox:1.35"},
		},
		{
			name:         "no fallback",
			ref:          "quay.io/org/app@sha256:" + "0123456789012345678901234567890123456789012345678901234567890123",
			skipFallback: true,
			want:         []string{"q.test/org/app@sha256:0123456789012345678901234567890123456789012345678901234567890123"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := Registry{SkipDefaultFallback: tt.skipFallback}
			if !tt.noMirrors {
				reg.Mirrors = func(r string) []string { return mirrors[r] }
			}
			p := newPuller(reg, v1.Platform{OS: "linux", Architecture: "amd64"}, t.TempDir())
			ref, err := p.parseReference(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.candidates(ref)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range got {
				names = append(names, c.Name())
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("candidates (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPullTransport(t *testing.T) {
	t.Parallel()
	custom := remote.DefaultTransport.(*http.Transport).Clone()
	custom.TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	reg := Registry{
		Transport: func(r string) http.RoundTripper {
			if r == "ca.test" || r == "both.test" {
				return custom
			}
			return nil
		},
		Insecure: func(r string) bool { return r == "insecure.test" || r == "both.test" },
		Net:      nettimeout.Limits{Connect: 7 * time.Second},
	}
	p := newPuller(reg, v1.Platform{OS: "linux", Architecture: "amd64"}, t.TempDir())
	// A registry with no transport of its own gets go-containerregistry's default held
	// to the network limits (its TLS handshake to the connect limit shows it).
	for _, r := range []string{"plain.test", "insecure.test"} {
		if tr, _ := p.transportFor(r).(*http.Transport); tr == nil || tr.TLSHandshakeTimeout != 7*time.Second {
			t.Errorf("%s: transport not held to the network limits", r)
		}
	}
	if tr := p.transportFor("ca.test"); tr != custom {
		t.Error("ca.test: not the configured transport")
	}
	if tr, _ := p.transportFor("insecure.test").(*http.Transport); tr == nil || !tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("insecure.test: certificate checks not skipped")
	}
	tr, _ := p.transportFor("both.test").(*http.Transport)
	if tr == nil || !tr.TLSClientConfig.InsecureSkipVerify || tr.TLSClientConfig.RootCAs != custom.TLSClientConfig.RootCAs {
		t.Error("both.test: want the configured CA with certificate checks skipped")
	}
	if custom.TLSClientConfig.InsecureSkipVerify {
		t.Error("the configured transport was modified")
	}
}
