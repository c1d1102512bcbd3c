package testworld

import (
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

	wantObject(t, srv.Endpoint+"/kiln-bucket/dir/ctx.tar.gz", "payload")
}
