package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestPushMountsBaseLayers pushes an image to the registry its base came from (the
// test world's docker-registry, which keeps blobs per repository, seen through a
// recording proxy): the base's layers are mounted from the base's repository (POST
// …/blobs/uploads/?mount=…&from=busybox), never uploaded again.
func TestPushMountsBaseLayers(t *testing.T) {
	t.Parallel()
	needRoot(t)
	upstream, err := url.Parse("http://" + testworld.Registry(t))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		mounts  []string
		uploads []string
	)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		if m := q.Get("mount"); m != "" {
			mounts = append(mounts, q.Get("from")+"@"+m)
		}
		if r.Method == http.MethodPut && q.Get("digest") != "" {
			uploads = append(uploads, q.Get("digest"))
		}
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+host+"/"+testworld.BusyboxRepoTag+"\nRUN echo built > /built\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := host + "/kiln-test/mount-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":v1" // a new repository every run
	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "--context", "dir://" + dir, "--isolation=chroot", "--log-format=text",
		"--insecure", "--insecure-pull", "--destination", dest}, &stdout, &stderr, e2eHost(t))
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(mounts) == 0 {
		t.Fatalf("no cross-repository mount; uploads %q", uploads)
	}
	for _, m := range mounts {
		from, digest, _ := strings.Cut(m, "@")
		if from != "busybox" {
			t.Errorf("mount %s from %q, want from busybox", digest, from)
		}
		for _, u := range uploads {
			if u == digest {
				t.Errorf("base layer %s was uploaded as well as mounted", digest)
			}
		}
	}
}
