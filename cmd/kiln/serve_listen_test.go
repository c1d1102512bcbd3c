package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		tls     bool
		want    hostSpec
		wantErr string
	}{
		{spec: "unix:///var/run/kiln.sock", want: hostSpec{"unix", "/var/run/kiln.sock"}},
		{spec: "tcp://0.0.0.0:2375", want: hostSpec{"tcp", "0.0.0.0:2375"}},
		{spec: "tcp://127.0.0.1:0", want: hostSpec{"tcp", "127.0.0.1:0"}},
		{spec: "tcp://build.example", want: hostSpec{"tcp", "build.example:2375"}},
		{spec: "tcp://build.example", tls: true, want: hostSpec{"tcp", "build.example:2376"}},
		{spec: "tcp://:2375", want: hostSpec{"tcp", "127.0.0.1:2375"}},
		{spec: "tcp://[::1]:2375", want: hostSpec{"tcp", "[::1]:2375"}},
		{spec: "tcp://[::1]", want: hostSpec{"tcp", "[::1]:2375"}},
		{spec: "127.0.0.1:2375", want: hostSpec{"tcp", "127.0.0.1:2375"}},
		{spec: "unix://", wantErr: "no socket path"},
		{spec: "tcp://host:2375/path", wantErr: "without a path"},
		{spec: "fd://", wantErr: "not supported"},
		{spec: "ssh://me@host", wantErr: "not supported"},
		{spec: "http://host:2375", wantErr: "unknown protocol"},
	}
	for _, tt := range tests {
		got, err := parseHost(tt.spec, tt.tls)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseHost(%q) error %v, want one containing %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseHost(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
	// A relative socket path is made absolute, so the export line works from anywhere.
	got, err := parseHost("unix://kiln.sock", false)
	if err != nil || !filepath.IsAbs(got.address) {
		t.Errorf("parseHost(unix://kiln.sock) = %+v, %v; want an absolute path", got, err)
	}
}

func TestListenUnixReplacesOnlyStaleSockets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()

	// A socket whose server is gone: replaced.
	stale := filepath.Join(dir, "stale.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err := listenUnix(ctx, stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer l.Close()
	if fi, err := os.Lstat(stale); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v (%v), want 0660", fi.Mode(), err)
	}

	// A live one (the listener just made): refused.
	if _, err := listenUnix(ctx, stale); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("live socket: error %v, want another server", err)
	}

	// Not a socket: never deleted.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(ctx, file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: error %v, want not a socket", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "keep me" {
		t.Error("the regular file was replaced")
	}
}

func TestLoadTLSErrors(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	tests := []struct {
		name    string
		f       serveFlags
		wantErr string
	}{
		{"cert without --tls", serveFlags{tlsCert: pki.serverCert, tlsKey: pki.serverKey}, "need --tls or --tlsverify"},
		{"--tls without cert", serveFlags{tls: true}, "need --tlscert and --tlskey"},
		{"--tlsverify without CA", serveFlags{tlsVerify: true, tlsCert: pki.serverCert, tlsKey: pki.serverKey}, "--tlsverify needs --tlscacert"},
		{"missing key file", serveFlags{tls: true, tlsCert: pki.serverCert, tlsKey: filepath.Join(pki.dir, "nope.pem")}, "loading --tlscert"},
		{"CA file without certificates", serveFlags{tlsVerify: true, tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsCACert: pki.serverKey}, "no PEM certificates"},
	}
	for _, tt := range tests {
		if _, err := loadTLS(&tt.f); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}

	cfg, err := loadTLS(&serveFlags{tlsVerify: true, tlsCACert: pki.caCert, tlsCert: pki.serverCert, tlsKey: pki.serverKey})
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("--tlsverify: %v, %v; want client certificates required", cfg, err)
	}
	cfg, err = loadTLS(&serveFlags{tls: true, tlsCACert: pki.caCert, tlsCert: pki.serverCert, tlsKey: pki.serverKey})
	if err != nil || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("--tls --tlscacert: %v, %v; want offered client certificates verified", cfg, err)
	}
	if cfg, err := loadTLS(&serveFlags{}); cfg != nil || err != nil {
		t.Errorf("no TLS flags: %v, %v; want plain TCP", cfg, err)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate,
// as PEM files in dir (the layout `docker --tlsverify` expects: ca.pem, cert.pem,
// key.pem for the client).
type testPKI struct {
	dir                   string
	caCert                string
	serverCert, serverKey string
	clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	p := testPKI{
		dir:        dir,
		caCert:     filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server-cert.pem"),
		serverKey:  filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "cert.pem"),
		clientKey:  filepath.Join(dir, "key.pem"),
	}
	caKey, caDER := issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "kiln test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.caCert, "CERTIFICATE", caDER)

	srvKey, srvDER := issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kiln server"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	writePEM(t, p.serverCert, "CERTIFICATE", srvDER)
	writeKey(t, p.serverKey, srvKey)

	cliKey, cliDER := issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kiln client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	writePEM(t, p.clientCert, "CERTIFICATE", cliDER)
	writeKey(t, p.clientKey, cliKey)
	return p
}

// issue creates a key and a certificate for tmpl, signed by parent (self-signed when
// parent is nil).
func issue(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, key *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "EC PRIVATE KEY", der)
}
