package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/test/testworld"
)

// Bucket contexts end to end: kiln build fetches the context archive from a real
// S3-compatible server (s3rver), Cloud Storage emulator (fake-gcs-server) and Azure
// Storage emulator (Azurite), each started on loopback, and builds the image from it.
// The clouds' SDKs read their settings from the process environment, so these tests
// set it and cannot run in parallel.

// bucketContext is the archive every case uploads: a Dockerfile copying one file.
func bucketContext(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"hello.txt":     "hello from a bucket\n",
		"secret.txt":    "must not be copied\n",
		".dockerignore": "secret.txt\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// buildBucket runs kiln build --context spec with env and checks that the image holds
// hello.txt with the archive's content.
func buildBucket(t *testing.T, spec string, env map[string]string) {
	t.Helper()
	needRoot(t)
	out := filepath.Join(t.TempDir(), "img.tar")
	h := e2eHost(t)
	h.lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "--context", spec, "--isolation=chroot", "--no-push",
		"--tar-path", out, "--log-format=text"}, &stdout, &stderr, h)
	if code != 0 {
		t.Fatalf("kiln build --context %s exited %d:\n%s", spec, code, stderr.String())
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(mutate.Extract(img))
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(hdr.Name, "/") != "hello.txt" {
			continue
		}
		body, _ := io.ReadAll(tr)
		if string(body) != "hello from a bucket\n" {
			t.Errorf("hello.txt = %q", body)
		}
		found = true
	}
	if !found {
		t.Errorf("the image built from %s has no hello.txt", spec)
	}
}

func TestBuildFromS3(t *testing.T) {
	s := testworld.S3(t)
	s.SetEnv(t)
	s.CreateBucket(t, "contexts")
	s.Put(t, "contexts", "app/context.tar.gz", bucketContext(t))
	buildBucket(t, "s3://contexts/app/context.tar.gz", map[string]string{
		"S3_ENDPOINT": s.Endpoint, "S3_FORCE_PATH_STYLE": "true",
	})
}

func TestBuildFromGCS(t *testing.T) {
	endpoint, store := testworld.GCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(endpoint, "http://"))
	store.CreateBucket(t, "contexts")
	store.Put(t, "contexts", "app/context.tar.gz", bucketContext(t))
	buildBucket(t, "gs://contexts/app/context.tar.gz", nil)
}

func TestBuildFromAzureBlob(t *testing.T) {
	a := testworld.Azurite(t)
	url := a.Put(t, "contexts", "app/context.tar.gz", bucketContext(t))
	buildBucket(t, url, map[string]string{
		"KILN_AZURE_BLOB_ENDPOINTS": a.Endpoint, "AZURE_STORAGE_ACCESS_KEY": a.Key,
	})
}
