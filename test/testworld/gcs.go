package testworld

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// gcsEmulatorStartTimeout bounds how long the emulator may take to answer after it
// starts.
const gcsEmulatorStartTimeout = 15 * time.Second

// GCSStore is a running Cloud Storage emulator (fake-gcs-server) holding buckets
// and objects in memory, for tests of gs:// contexts.
type GCSStore struct {
	endpoint string
	client   *storage.Client
}

// GCS starts a Cloud Storage emulator on a free loopback port for this test, stopped
// (killing the process group it started) when the test ends, and returns its endpoint,
// http://127.0.0.1:PORT (what CloudOptions.GCSEndpoint or STORAGE_EMULATOR_HOST take),
// and a handle to fill it. A missing emulator binary skips the test, or fails it when
// KILN_TEST_WORLD_REQUIRED=1.
func GCS(t testing.TB) (endpoint string, store *GCSStore) {
	t.Helper()
	if testing.Short() {
		t.Skip("testworld: emulator tests do not run with -short")
		return "", nil
	}
	bin, err := findWorldBinary("bin", "fake-gcs-server")
	if err != nil {
		unavailable(t, required(), "testworld: %v, or go install github.com/fsouza/fake-gcs-server@latest", err)
		return "", nil
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	endpoint = "http://" + addr
	// -public-host is the host the emulator serves XML-API object reads (GET /bucket/object)
	// on, which is how the SDK's object reader fetches; it must be the address clients use.
	// Ready means the bucket listing answers 200, not merely that the port is open.
	startEmulator(t, "fake-gcs-server", bin, []string{"-scheme", "http", "-host", "127.0.0.1",
		"-port", strconv.Itoa(port), "-public-host", addr, "-backend", "memory", "-log-level", "warn"},
		httpProbe(endpoint+"/storage/v1/b?project=kiln-test", func(status int) bool { return status == http.StatusOK }),
		gcsEmulatorStartTimeout)
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("testworld: Cloud Storage client for %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return endpoint, &GCSStore{endpoint: endpoint, client: client}
}

// CreateBucket makes an empty bucket; the test fails when the emulator refuses.
func (g *GCSStore) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := g.client.Bucket(bucket).Create(ctx, "kiln-test", nil); err != nil {
		t.Fatalf("testworld: create bucket %s at %s: %v", bucket, g.endpoint, err)
	}
}

// Put uploads data as gs://bucket/object (the bucket must exist); the test fails
// when the upload does.
func (g *GCSStore) Put(t testing.TB, bucket, object string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := g.client.Bucket(bucket).Object(object).NewWriter(ctx)
	_, err := io.Copy(w, bytes.NewReader(data))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testworld: upload gs://%s/%s to %s: %v", bucket, object, g.endpoint, err)
	}
}
