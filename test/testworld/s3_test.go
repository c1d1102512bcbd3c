package testworld

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// TestS3 checks that s3rver starts, that an upload reads back through the SDK (Put
// compares the bytes), and that the object is also served path-style to a plain GET,
// the addressing kiln's s3:// source uses against an endpoint override.
func TestS3(t *testing.T) {
	t.Parallel()
	srv := S3(t)
	srv.CreateBucket(t, "kiln-bucket")
	srv.Put(t, "kiln-bucket", "dir/ctx.tar.gz", []byte("payload"))

	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.Endpoint+"/kiln-bucket/dir/ctx.tar.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(got) != "payload" {
		t.Fatalf("GET object: %s %q, want 200 %q", resp.Status, got, "payload")
	}
}
