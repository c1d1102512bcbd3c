package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// These tests run whole builds through the command line, in chroot isolation under
// the test's temp dir: they need root, and a RUN needs the test world's registry.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("building needs root")
	}
}

// e2eHost is the real host, except that state directories go to the test's temp dir.
func e2eHost(t *testing.T) host {
	h := realHost()
	h.mkdirTemp = func() (string, error) { return os.MkdirTemp(t.TempDir(), "state-") }
	return h
}

func TestBuildWritesLocalOutputs(t *testing.T) {
	t.Parallel()
	needRoot(t)
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Dockerfile": "FROM scratch\nARG GREETING\nCOPY hello.txt /hello.txt\nLABEL greeting=$GREETING\n",
		"hello.txt":  "hello\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tarPath, layoutPath, digestFile := filepath.Join(dir, "img.tar"), filepath.Join(dir, "layout"), filepath.Join(dir, "digest")

	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "--context", "dir://" + ctxDir, "--isolation=chroot", "--no-push",
		"-d", "kiln-test/app:v1", "--tar-path", tarPath, "--oci-layout-path", layoutPath, "--digest-file", digestFile,
		"--build-arg", "GREETING=hi", "--label", "extra=1", "--log-format=text"}, &stdout, &stderr, e2eHost(t))
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Step 3/5 : COPY hello.txt /hello.txt") {
		t.Errorf("no step line in the log:\n%s", stderr.String())
	}

	tag, _ := name.NewTag("kiln-test/app:v1")
	img, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatalf("reading the tarball: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Labels; got["greeting"] != "hi" || got["extra"] != "1" {
		t.Errorf("labels = %v, want greeting=hi and extra=1", got)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "hello.txt" {
			found = true
		}
	}
	if !found {
		t.Error("the layer does not hold hello.txt")
	}

	ii, err := layout.ImageIndexFromPath(layoutPath)
	if err != nil {
		t.Fatalf("reading the OCI layout: %v", err)
	}
	m, _ := ii.IndexManifest()
	digest, _ := os.ReadFile(digestFile)
	if len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != string(digest) {
		t.Errorf("layout holds %v; digest file says %s", m.Manifests, digest)
	}
}

func TestBuildPassesRunExitCode(t *testing.T) {
	t.Parallel()
	needRoot(t)
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	ctxDir := t.TempDir()
	df := "FROM " + reg + "/busybox:1.35\nRUN echo to-stdout && exit 7\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "-c", ctxDir, "--isolation=chroot", "--no-push"}, &stdout, &stderr, e2eHost(t))
	if code != 7 {
		t.Errorf("exit code %d, want the RUN's 7; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Dockerfile:2") {
		t.Errorf("the error does not name the Dockerfile line:\n%s", stderr.String())
	}
	if stdout.String() != "to-stdout\n" {
		t.Errorf("stdout = %q, want the RUN's output", stdout.String())
	}
}
