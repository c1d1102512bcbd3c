package credentials_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/credentials"
)

// The tests in this file use t.Setenv and therefore cannot run in parallel.

// TestCloudNeverProbesForeignHosts is the promise that makes the cloud keychains safe
// to enable everywhere: a registry no cloud owns is answered anonymous at once,
// without a single request to a metadata or token service.
func TestCloudNeverProbesForeignHosts(t *testing.T) {
	blackhole, hits := counter(t)
	isolateCloud(t, blackhole)
	log, hook := debugLog()
	kc := credentials.Chain(credentials.WithLogger(log))

	for _, ref := range []string{
		"127.0.0.1:5000/kiln/base:1",
		"localhost:5000/x",
		"[::1]:5000/x",
		"busybox",
		"quay.io/x/y",
		"mcr.microsoft.com/dotnet/runtime",
		"gcr.io.example.com/x",
		"kiln.azurecr.io.example.com/x",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.example.com/x",
	} {
		start := time.Now()
		got := authOf(t, kc, ref)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s: resolving took %v, want under 100ms", ref, d)
		}
		if got != "anonymous" {
			t.Errorf("%s: %s, want anonymous", ref, got)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the cloud fakes saw %d requests for registries no cloud owns", n)
	}
	if s := logText(hook); s != "" {
		t.Errorf("foreign registries were logged about: %s", s)
	}
}

// TestCloudFallsBackToAnonymous checks that a cloud with no credentials configured
// never fails a pull: public images live on gcr.io, ECR Public and ACR too.
func TestCloudFallsBackToAnonymous(t *testing.T) {
	for _, ref := range []string{
		"gcr.io/distroless/static",
		"us-docker.pkg.dev/p/r/i",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
		"public.ecr.aws/docker/library/busybox",
		"kiln.azurecr.io/app",
	} {
		t.Run(ref, func(t *testing.T) {
			blackhole, hits := counter(t)
			isolateCloud(t, blackhole)
			log, hook := debugLog()
			kc := credentials.Cloud(credentials.WithLogger(log))

			start := time.Now()
			if got := authOf(t, kc, ref); got != "anonymous" {
				t.Fatalf("%s, want anonymous", got)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("falling back took %v", d)
			}
			registry := strings.SplitN(ref, "/", 2)[0]
			if s := logText(hook); !strings.Contains(s, registry) || !strings.Contains(s, "level=debug") {
				t.Errorf("no debug note naming %s: %q", registry, s)
			}
			for _, e := range hook.AllEntries() {
				if e.Level != logrus.DebugLevel {
					t.Errorf("logged at %s, want debug: %s", e.Level, e.Message)
				}
			}

			// A second pull within the minute asks no cloud service again.
			before := hits.Load()
			if got := authOf(t, kc, ref); got != "anonymous" {
				t.Fatalf("second lookup: %s, want anonymous", got)
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("the second lookup made %d requests, want none", n)
			}
		})
	}
}

// TestChainPrecedence checks the documented order: the request's credentials, then
// config.json, then the cloud, then anonymous.
func TestChainPrecedence(t *testing.T) {
	const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	basic := func(up string) string { return base64.StdEncoding.EncodeToString([]byte(up)) }

	tests := []struct {
		name    string
		config  string // config.json; "" = none
		request string // X-Registry-Config JSON; "" = none
		ref     string
		want    string
		wantECR bool // whether the fake ECR API must have been asked
	}{{
		name: "the cloud when nothing else has credentials",
		ref:  ecrHost + "/app", want: "AWS:" + fakeECRToken, wantECR: true,
	}, {
		name:   "a config.json entry beats the cloud",
		config: fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, ecrHost, basic("cfg:1")),
		ref:    ecrHost + "/app", want: "cfg:1",
	}, {
		name:   "a config.json entry for another registry does not",
		config: fmt.Sprintf(`{"auths":{"quay.io":{"auth":%q}}}`, basic("cfg:1")),
		ref:    ecrHost + "/app", want: "AWS:" + fakeECRToken, wantECR: true,
	}, {
		name:    "the request beats config.json",
		config:  fmt.Sprintf(`{"auths":{"127.0.0.1:5011":{"auth":%q}}}`, basic("cfg:1")),
		request: `{"127.0.0.1:5011":{"username":"req","password":"2"}}`,
		ref:     "127.0.0.1:5011/app", want: "req:2",
	}, {
		name:    "the request beats the cloud",
		request: fmt.Sprintf(`{%q:{"username":"req","password":"2"}}`, ecrHost),
		ref:     ecrHost + "/app", want: "req:2",
	}, {
		name:    "config.json answers what the request does not name",
		config:  fmt.Sprintf(`{"auths":{"127.0.0.1:5011":{"auth":%q}}}`, basic("cfg:1")),
		request: `{"127.0.0.1:5012":{"username":"req","password":"2"}}`,
		ref:     "127.0.0.1:5011/app", want: "cfg:1",
	}, {
		name: "anonymous last",
		ref:  "127.0.0.1:5011/app", want: "anonymous",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blackhole, _ := counter(t)
			dir := isolateCloud(t, blackhole)
			ecr := fakeECR(t)
			if tt.config != "" {
				writeConfig(t, dir, tt.config)
			}
			var opts []credentials.Option
			if tt.request != "" {
				req, err := credentials.FromRegistryConfig(base64.URLEncoding.EncodeToString([]byte(tt.request)))
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, credentials.WithRequest(req))
			}
			if got := authOf(t, credentials.Chain(opts...), tt.ref); got != tt.want {
				t.Errorf("%s, want %s", got, tt.want)
			}
			if asked := ecr.calls.Load() > 0; asked != tt.wantECR {
				t.Errorf("fake ECR API asked: %v, want %v", asked, tt.wantECR)
			}
		})
	}
}

// TestChainReportsBrokenDockerConfig: a credential helper the user configured but
// that is missing is an error, not a silent fall-through to the cloud.
func TestChainReportsBrokenDockerConfig(t *testing.T) {
	blackhole, _ := counter(t)
	dir := isolateCloud(t, blackhole)
	writeConfig(t, dir, `{"credHelpers":{"gcr.io":"kiln-missing-helper"}}`)
	kc := credentials.Chain()
	if _, err := kc.Resolve(mustRepo(t, "gcr.io/p/i")); err == nil {
		t.Fatal("a missing credential helper was ignored")
	}
}
