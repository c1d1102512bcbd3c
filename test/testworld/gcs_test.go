package testworld

import (
	"testing"
)

// TestGCS checks that the emulator starts and that an uploaded object reads back over
// the XML API, the path the SDK's object reader (and so kiln's gs:// source) takes.
func TestGCS(t *testing.T) {
	t.Parallel()
	endpoint, store := GCS(t)
	store.CreateBucket(t, "kiln-bucket")
	store.Put(t, "kiln-bucket", "dir/ctx.tar.gz", []byte("payload"))

	wantObject(t, endpoint+"/kiln-bucket/dir/ctx.tar.gz", "payload")
}
