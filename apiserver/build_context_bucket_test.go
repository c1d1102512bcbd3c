package apiserver

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/test/testworld"
)

// TestBuildRemoteBucket builds from remote= archives in buckets on real emulators
// started on loopback (s3rver for S3, Azurite for Azure Blob), fetched with the
// server's own cloud settings. The AWS SDK reads its credentials from the process
// environment, so the test is not parallel.
func TestBuildRemoteBucket(t *testing.T) {
	w := newBuildWorld(t, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nCOPY a.txt /\nRUN cat /a.txt\n", "a.txt": "from a bucket\n"}))
	zw.Close()

	s3 := testworld.S3(t)
	s3.SetEnv(t)
	s3.CreateBucket(t, "ctx")
	s3.Put(t, "ctx", "app.tar.gz", gz.Bytes())
	az := testworld.Azurite(t)
	blob := az.Put(t, "ctx", "app.tar.gz", gz.Bytes())

	ts := newBuildServer(t, BuildConfig{Cloud: contexts.CloudOptions{
		S3Endpoint: s3.Endpoint, S3ForcePathStyle: true,
		AzureBlobEndpoints: []string{az.Endpoint}, AzureAccessKey: az.Key,
	}, MaxContextBytes: 1 << 20})
	for _, remote := range []string{"s3://ctx/app.tar.gz", blob} {
		t.Run(remote, func(t *testing.T) {
			resp := postBuild(t, ts.URL, "remote="+url.QueryEscape(remote), nil, nil)
			if resp.status != http.StatusOK || !strings.Contains(resp.text(), "from a bucket\n") || resp.last().ErrorDetail != nil {
				t.Fatalf("HTTP %d %s\n%s", resp.status, resp.body, resp.text())
			}
		})
	}
	t.Run("missing object", func(t *testing.T) {
		resp := postBuild(t, ts.URL, "remote="+url.QueryEscape("s3://ctx/nothere.tar.gz"), nil, nil)
		if resp.status != http.StatusInternalServerError || !strings.Contains(resp.body, "s3://ctx/nothere.tar.gz") {
			t.Fatalf("HTTP %d %s", resp.status, resp.body)
		}
	})
	t.Run("over the context size limit", func(t *testing.T) {
		var big bytes.Buffer
		zw := gzip.NewWriter(&big)
		zw.Write(contextTar(t, map[string]string{"Dockerfile": "FROM scratch\n", "zeros": strings.Repeat("\x00", 2<<20)}))
		zw.Close()
		s3.Put(t, "ctx", "big.tar.gz", big.Bytes())
		resp := postBuild(t, ts.URL, "remote="+url.QueryEscape("s3://ctx/big.tar.gz"), nil, nil)
		if resp.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("HTTP %d %s, want 413", resp.status, resp.body)
		}
	})
}
