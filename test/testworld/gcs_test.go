package testworld

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// TestGCS checks that the emulator starts and that an uploaded object reads back over
// the XML API, the path the SDK's object reader (and so kiln's gs:// source) takes.
func TestGCS(t *testing.T) {
	t.Parallel()
	endpoint, store := GCS(t)
	store.CreateBucket(t, "kiln-bucket")
	store.Put(t, "kiln-bucket", "dir/ctx.tar.gz", []byte("payload"))

	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, endpoint+"/kiln-bucket/dir/ctx.tar.gz", nil)
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
