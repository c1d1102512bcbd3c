package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildSecretAndSSHFlags builds, through the command line, a Dockerfile whose RUN
// reads a --secret file and talks to a --ssh agent socket: the RUN sees both, and
// neither the image (its filesystem and config) nor kiln's output holds the secret.
func TestBuildSecretAndSSHFlags(t *testing.T) {
	t.Parallel()
	needRoot(t)
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	dir := t.TempDir()
	const value = "e2e-s3cr3t-8d1c"
	secretFile := filepath.Join(dir, "token")
	if err := os.WriteFile(secretFile, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	serveFakeAgent(t, sock, "agent says hi")
	sum := sha256.Sum256([]byte(value))
	ctxDir := filepath.Join(dir, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	df := "FROM " + reg + "/debian:bookworm\n" +
		"RUN --mount=type=secret,id=tok --mount=type=ssh sha256sum </run/secrets/tok | cut -c1-16 >/out && " +
		`perl -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK})->getline' >>/out` + "\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "img.tar")
	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "-c", ctxDir, "--isolation=chroot", "--no-push", "-d", "kiln-test/secret:1", "--tar-path", tarPath,
		"--secret", "id=tok,src=" + secretFile, "--ssh", "default=" + sock}, &stdout, &stderr, e2eHost(t))
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), value) {
		t.Errorf("kiln's output holds the secret:\n%s%s", stdout.String(), stderr.String())
	}
	tag, _ := name.NewTag("kiln-test/secret:1")
	img, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	last, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(value)) || bytes.Contains(last, []byte(value)) {
		t.Error("the image holds the secret")
	}
	for _, p := range []string{"run/secrets", "run/buildkit"} {
		if bytes.Contains(last, []byte(p)) {
			t.Errorf("the RUN's layer has %s", p)
		}
	}
	fsrc := mutate.Extract(img)
	defer fsrc.Close()
	all, err := io.ReadAll(fsrc)
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(sum[:])[:16] + "\nagent says hi"
	if !bytes.Contains(all, []byte(want)) {
		t.Errorf("/out does not hold %q (the secret's digest and the agent's words)", want)
	}
}
