package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/nettimeout"
)

func TestPlanBuildMirrors(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	tests := []struct {
		name         string
		args         []string
		env          map[string]string
		want         map[string][]string // registry -> mirrors
		skipFallback bool
		wantErr      string
	}{
		{name: "none", want: map[string][]string{"index.docker.io": nil}},
		{
			name: "mirrors in order, then the env",
			args: []string{"--registry-mirror=m1.test", "--registry-mirror=m2.test:5000/dockerhub"},
			env:  map[string]string{"KANIKO_REGISTRY_MIRROR": "m3.test, m4.test"},
			want: map[string][]string{
				"index.docker.io": {"m1.test", "m2.test:5000/dockerhub", "m3.test", "m4.test"},
				"quay.io":         nil,
			},
		},
		{
			name: "maps before mirrors, docker.io normalized",
			args: []string{"--registry-map=docker.io=a.test;quay.io=b.test;quay.io=c.test", "--registry-map=gcr.io=d.test", "--registry-mirror=m.test"},
			want: map[string][]string{
				"index.docker.io": {"a.test", "m.test"},
				"quay.io":         {"b.test", "c.test"},
				"gcr.io":          {"d.test"},
			},
		},
		{
			name:         "skip fallback",
			args:         []string{"--registry-map=example.invalid=127.0.0.1:1", "--skip-default-registry-fallback"},
			want:         map[string][]string{"example.invalid": {"127.0.0.1:1"}},
			skipFallback: true,
		},
		{
			// kaniko's order: --registry-map, KANIKO_REGISTRY_MAP, then the mirrors.
			name: "KANIKO_REGISTRY_MAP after the flag's maps, before the mirrors",
			args: []string{"--registry-map=quay.io=b.test", "--registry-mirror=m.test"},
			env: map[string]string{
				"KANIKO_REGISTRY_MAP":    "quay.io=e.test;docker.io=f.test; ;gcr.io=g.test:5000/gcr",
				"KANIKO_REGISTRY_MIRROR": "n.test",
			},
			want: map[string][]string{
				"index.docker.io": {"f.test", "m.test", "n.test"},
				"quay.io":         {"b.test", "e.test"},
				"gcr.io":          {"g.test:5000/gcr"},
			},
		},
		{name: "empty KANIKO_REGISTRY_MAP", env: map[string]string{"KANIKO_REGISTRY_MAP": ""}, want: map[string][]string{"index.docker.io": nil}},
		{name: "bad KANIKO_REGISTRY_MAP", env: map[string]string{"KANIKO_REGISTRY_MAP": "quay.io"}, wantErr: `KANIKO_REGISTRY_MAP "quay.io": want original=mirror`},
		{name: "map without mirror", args: []string{"--registry-map=quay.io"}, wantErr: `--registry-map "quay.io": want original=mirror`},
		{name: "map with empty mirror", args: []string{"--registry-map=quay.io="}, wantErr: "want original=mirror"},
		{name: "map with bad registry", args: []string{"--registry-map=Bad Host=m.test"}, wantErr: "--registry-map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir, "--no-push"}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, false, tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planBuild error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			for reg, want := range tt.want {
				var got []string
				if p.registry.Mirrors != nil {
					got = p.registry.Mirrors(reg)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("mirrors of %s (-want +got):\n%s", reg, diff)
				}
			}
			if p.registry.SkipDefaultFallback != tt.skipFallback {
				t.Errorf("SkipDefaultFallback = %v, want %v", p.registry.SkipDefaultFallback, tt.skipFallback)
			}
		})
	}
}

func TestPlanBuildRegistryCertificates(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	pki := newTestPKI(t)
	tests := []struct {
		name       string
		args       []string
		withCA     []string // registries whose transport trusts an extra CA
		withClient []string // registries whose transport presents a client certificate
		plain      []string // registries left on the default transport
		wantErr    string
	}{
		{name: "none", plain: []string{"r.test"}},
		{
			name:   "CA for one registry",
			args:   []string{"--registry-certificate=r.test:5443=" + pki.caCert},
			withCA: []string{"r.test:5443"},
			plain:  []string{"r.test", "other.test"},
		},
		{
			name:       "CA and client certificate",
			args:       []string{"--registry-certificate=r.test=" + pki.caCert, "--registry-client-cert=r.test=" + pki.clientCert + "," + pki.clientKey, "--registry-client-cert=m.test=" + pki.clientCert + "," + pki.clientKey},
			withCA:     []string{"r.test"},
			withClient: []string{"r.test", "m.test"},
		},
		{name: "certificate without path", args: []string{"--registry-certificate=r.test"}, wantErr: "want registry=/path/ca.crt"},
		{name: "missing CA file", args: []string{"--registry-certificate=r.test=/nonexistent/ca.crt"}, wantErr: "/nonexistent/ca.crt"},
		{name: "CA file not PEM", args: []string{"--registry-certificate=r.test=" + filepath.Join(ctxDir, "Dockerfile")}, wantErr: "no PEM certificate"},
		{name: "client cert without key", args: []string{"--registry-client-cert=r.test=" + pki.clientCert}, wantErr: "want registry=/path/cert.pem,/path/key.pem"},
		{name: "client key missing", args: []string{"--registry-client-cert=r.test=" + pki.clientCert + ",/nonexistent/key.pem"}, wantErr: "/nonexistent/key.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir, "--no-push"}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, false, nil))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planBuild error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			tlsOf := func(reg string) (pull, push *http.Transport) {
				if p.registry.Transport != nil {
					pull, _ = p.registry.Transport(reg).(*http.Transport)
				}
				push, _ = p.outputs.transportFor(reg).(*http.Transport)
				return pull, push
			}
			for _, reg := range tt.withCA {
				pull, push := tlsOf(reg)
				if pull == nil || pull.TLSClientConfig.RootCAs == nil || push != pull {
					t.Errorf("%s: no extra CA for pulls and pushes", reg)
				}
			}
			for _, reg := range tt.withClient {
				pull, push := tlsOf(reg)
				if pull == nil || len(pull.TLSClientConfig.Certificates) != 1 || push != pull {
					t.Errorf("%s: no client certificate for pulls and pushes", reg)
				}
			}
			for _, reg := range tt.plain {
				// the default transport, held to the network limits, for pulls and pushes alike
				pull, push := tlsOf(reg)
				if pull == nil || push != pull || (pull.TLSClientConfig != nil && (pull.TLSClientConfig.RootCAs != nil || len(pull.TLSClientConfig.Certificates) > 0)) {
					t.Errorf("%s: custom transport, want the default", reg)
				}
			}
		})
	}
}

// TestNetLimits: --net-connect-timeout and --net-stall-timeout, else their
// variables, else nettimeout's defaults (the zero Limits); never unbounded.
func TestNetLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flags   registryFlags
		env     map[string]string
		want    nettimeout.Limits
		wantErr string
	}{
		{name: "defaults"},
		{name: "flags", flags: registryFlags{netConnect: 5 * time.Second, netStall: time.Minute}, want: nettimeout.Limits{Connect: 5 * time.Second, Stall: time.Minute}},
		{name: "variables", env: map[string]string{"KILN_NET_CONNECT_TIMEOUT": "7s", "KILN_NET_STALL_TIMEOUT": "10m"}, want: nettimeout.Limits{Connect: 7 * time.Second, Stall: 10 * time.Minute}},
		{name: "a flag wins", flags: registryFlags{netStall: time.Second}, env: map[string]string{"KILN_NET_STALL_TIMEOUT": "10m"}, want: nettimeout.Limits{Stall: time.Second}},
		{name: "not a duration", env: map[string]string{"KILN_NET_STALL_TIMEOUT": "soon"}, wantErr: `KILN_NET_STALL_TIMEOUT="soon": not a duration`},
		{name: "zero variable", env: map[string]string{"KILN_NET_CONNECT_TIMEOUT": "0"}, wantErr: "must be positive"},
		{name: "negative flag", flags: registryFlags{netConnect: -time.Second}, wantErr: "--net-connect-timeout -1s: must be positive"},
	}
	for _, tt := range tests {
		got, err := tt.flags.netLimits(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: netLimits = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}
