package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// kiln build --custom-platform for a platform the base does not provide fails, naming
// the line, the image and both platforms; it used to build an image for the base's
// platform without a word.
func TestBuildCustomPlatformNotProvided(t *testing.T) {
	t.Parallel()
	needRoot(t)
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	other := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	ctxDir := t.TempDir()
	base := reg + "/busybox:1.35" // the test world's, built for this machine
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+base+"\nENV A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "-c", ctxDir, "--isolation=chroot", "--no-push", "--custom-platform=" + other,
		"-d", "kiln-test/platform:1", "--tar-path", tarPath}, &stdout, &stderr, e2eHost(t))
	want := "error: Dockerfile:1: FROM " + base + ": no match for platform in manifest: " + base +
		" is an image for linux/" + runtime.GOARCH + ", not " + other
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit code %d, stderr:\n%s\nwant 1 and %q", code, stderr.String(), want)
	}
	if _, err := os.Stat(tarPath); err == nil {
		t.Errorf("an image was written to %s", tarPath)
	}
}
