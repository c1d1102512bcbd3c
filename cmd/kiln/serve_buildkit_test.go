package main

import (
	"context"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
)

// TestServeBuildkitAddrTLS: --buildkit-addr on TCP is served with the Engine
// listeners' TLS flags; with --tlsverify a BuildKit client needs a certificate from the
// CA, and one with it reaches BuildKit's API.
func TestServeBuildkitAddrTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	d, _, _ := startTestDaemon(t, "-H", "tcp://127.0.0.1:0", "--buildkit-addr", "tcp://127.0.0.1:0", "--tlsverify",
		"--tlscacert", pki.caCert, "--tlscert", pki.serverCert, "--tlskey", pki.serverKey)
	if len(d.bkHosts) != 1 {
		t.Fatalf("BuildKit listeners: %v", d.bkHosts)
	}
	addr := d.bkHosts[0]
	workers := func(opts ...bkclient.ClientOpt) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := bkclient.New(ctx, addr, opts...)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.ListWorkers(ctx)
		return err
	}
	if err := workers(bkclient.WithServerConfig("localhost", pki.caCert)); err == nil {
		t.Error("a client without a certificate was served")
	}
	if err := workers(); err == nil {
		t.Error("a plain-text client was served")
	}
	err := workers(bkclient.WithServerConfig("localhost", pki.caCert), bkclient.WithCredentials(pki.clientCert, pki.clientKey))
	if err != nil {
		t.Errorf("a client with a certificate: %v", err)
	}
	if !strings.HasPrefix(addr, "tcp://127.0.0.1:") {
		t.Errorf("address %q", addr)
	}
}
