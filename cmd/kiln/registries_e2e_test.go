package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// These tests build through real registries on loopback: Debian's docker-registry with
// TLS and client-certificate checks started here, and the test world's plain registry
// at 127.0.0.1:5000 (holding busybox:1.35) as a mirror. No other host is contacted:
// every case that could fall back to a non-loopback registry skips the fallback.

const worldBusybox = "127.0.0.1:5000/busybox:1.35"

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// buildFrom runs kiln build of a one-line-plus-label Dockerfile FROM base with extra
// flags and environment, writing the image to a tarball; it returns the exit code and
// the log.
func buildFrom(t *testing.T, base string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nLABEL built=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := e2eHost(t)
	h.lookupEnv = func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	var stdout, stderr bytes.Buffer
	all := append([]string{"build", "--context", "dir://" + dir, "--isolation=chroot", "--log-format=text"}, args...)
	if !strings.Contains(strings.Join(args, " "), "--destination") {
		all = append(all, "--no-push", "--tar-path", filepath.Join(dir, "out.tar"))
	}
	code := run(all, &stdout, &stderr, h)
	return code, stderr.String()
}

// copyImage copies src (on the plain test-world registry) to dst with the given options.
func copyImage(t *testing.T, src, dst string, opts ...remote.Option) {
	t.Helper()
	sref, err := name.ParseReference(src, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(sref)
	if err != nil {
		t.Skipf("test world registry not reachable: %v", err)
	}
	dref, err := name.ParseReference(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dref, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", dst, err)
	}
}

func TestBuildRegistryTLS(t *testing.T) {
	t.Parallel()
	needRoot(t)
	pki := newTestPKI(t)
	addr := startTLSRegistry(t, pki, true)
	tr := pkiTransport(t, pki)
	copyImage(t, worldBusybox, addr+"/base:v1", remote.WithTransport(tr))
	copyImage(t, worldBusybox, addr+"/library/busybox:1.35", remote.WithTransport(tr))
	ca := "--registry-certificate=" + addr + "=" + pki.caCert
	client := "--registry-client-cert=" + addr + "=" + pki.clientCert + "," + pki.clientKey

	tests := []struct {
		name    string
		base    string
		env     map[string]string
		args    []string
		wantErr string // in the log; "" = the build succeeds
	}{
		{name: "no certificate flags", base: addr + "/base:v1", wantErr: "certificate"},
		// The registry ends the handshake; how Go reports that varies (a TLS alert, or
		// an HTTP/2 connection that could not be established), so only the failure and
		// the registry are checked.
		{name: "CA without client certificate", base: addr + "/base:v1", args: []string{ca}, wantErr: addr},
		{name: "CA and client certificate", base: addr + "/base:v1", args: []string{ca, client}},
		{
			name: "push with CA and client certificate", base: addr + "/base:v1",
			args: []string{ca, client, "--destination", addr + "/pushed:v1"},
		},
		{
			name: "push without client certificate", base: worldBusybox,
			// Refused by the permission check, before the build.
			args: []string{ca, "--destination", addr + "/refused:v1"}, wantErr: "checking push permission for " + addr + "/refused:v1",
		},
		{
			// docker.io images go to the mirror; no fallback, so docker.io is never asked.
			name: "docker.io mirror over mTLS", base: "busybox:1.35",
			args: []string{ca, client, "--registry-mirror=" + deadAddr(t), "--registry-mirror=" + addr, "--skip-default-registry-fallback"},
		},
		{
			name: "docker.io mirror from KANIKO_REGISTRY_MIRROR", base: "busybox:1.35",
			env:  map[string]string{"KANIKO_REGISTRY_MIRROR": addr},
			args: []string{ca, client, "--skip-default-registry-fallback"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, log := buildFrom(t, tt.base, tt.env, tt.args...)
			if tt.wantErr == "" {
				if code != 0 {
					t.Fatalf("kiln build exited %d:\n%s", code, log)
				}
				return
			}
			if code == 0 {
				t.Fatalf("kiln build succeeded, want an error containing %q:\n%s", tt.wantErr, log)
			}
			if !strings.Contains(log, tt.wantErr) {
				t.Errorf("log does not mention %q:\n%s", tt.wantErr, log)
			}
		})
	}

	// The pushed image is there, readable with the same certificates.
	ref, _ := name.ParseReference(addr + "/pushed:v1")
	img, err := remote.Image(ref, remote.WithTransport(tr))
	if err != nil {
		t.Fatalf("reading the pushed image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Config.Labels["built"] != "yes" {
		t.Errorf("pushed image labels = %v (%v), want built=yes", cf.Config.Labels, err)
	}
}

func TestBuildRegistryMap(t *testing.T) {
	t.Parallel()
	needRoot(t)
	if _, err := remote.Head(mustRef(t, worldBusybox)); err != nil {
		t.Skipf("test world registry not reachable: %v", err)
	}
	dead := deadAddr(t)
	tests := []struct {
		name    string
		base    string
		args    []string
		wantErr string
	}{
		{name: "mapped", base: "example.invalid/busybox:1.35", args: []string{"--registry-map=example.invalid=127.0.0.1:5000", "--skip-default-registry-fallback"}},
		{
			name: "first mirror dead, second serves",
			base: "example.invalid/busybox:1.35",
			args: []string{"--registry-map=example.invalid=" + dead + ";example.invalid=127.0.0.1:5000", "--skip-default-registry-fallback"},
		},
		{
			name: "dead mirror without fallback", base: "example.invalid/busybox:1.35",
			args:    []string{"--registry-map=example.invalid=" + dead, "--skip-default-registry-fallback"},
			wantErr: dead,
		},
		{name: "dead mirror, fallback to the original", base: worldBusybox, args: []string{"--registry-map=127.0.0.1:5000=" + dead}},
		{
			name: "dead mirror, fallback skipped", base: worldBusybox,
			args:    []string{"--registry-map=127.0.0.1:5000=" + dead, "--skip-default-registry-fallback"},
			wantErr: dead,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, log := buildFrom(t, tt.base, nil, tt.args...)
			if tt.wantErr == "" {
				if code != 0 {
					t.Fatalf("kiln build exited %d:\n%s", code, log)
				}
				return
			}
			if code == 0 {
				t.Fatalf("kiln build succeeded, want an error containing %q:\n%s", tt.wantErr, log)
			}
			if !strings.Contains(log, tt.wantErr) || strings.Contains(log, "example.invalid/v2") {
				t.Errorf("log does not mention %q (or mentions the original):\n%s", tt.wantErr, log)
			}
		})
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
