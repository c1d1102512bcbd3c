package apiserver

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kiln-build/kiln/builder"
)

// TestPullImage drives POST /images/create (docker pull) against in-process
// registries: the image lands in the store under its tag and repo digest with the
// registry's image ID, the stream is dockerd's, a second pull is "up to date", the
// request's X-Registry-Auth reaches the registry, the base cache is warmed, and what
// kiln does not do is a clear error.
func TestPullImage(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, "", "")
	authReg := newTestRegistry(t, "puller", "pullpass")
	img, err := random.Image(400, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, img, reg+"/pull/app:1")
	imgDigest, _ := img.Digest()
	imgID, _ := img.ConfigName()
	layers, _ := img.Layers()
	firstLayer, _ := layers[0].Digest()
	authImg, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	pushImageAuth(t, authImg, authReg+"/private/app:2", "puller", "pullpass")

	baseCache := filepath.Join(t.TempDir(), "base")
	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Workspace: builder.Workspace{BaseCache: baseCache}}))
	pull := func(query string, h http.Header) (int, []message, string) {
		resp, raw := ts.call(t, http.MethodPost, "/v1.41/images/create?"+query, nil, h)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil, string(raw)
		}
		return resp.StatusCode, streamMessages(t, raw), ""
	}
	q := url.Values{"fromImage": {reg + "/pull/app"}, "tag": {"1"}}.Encode()

	status, msgs, body := pull(q, nil)
	if status != http.StatusOK {
		t.Fatalf("pull: %d %s", status, body)
	}
	want := []message{
		{ID: "1", Status: "Pulling from pull/app"},
		{ID: shortLayerID(firstLayer), Status: "Pulling fs layer", ProgressDetail: &progressDetail{}},
	}
	if len(msgs) < 4 || msgs[0] != want[0] || msgs[1].ID != want[1].ID || msgs[1].Status != want[1].Status {
		t.Fatalf("stream starts %+v, want %+v", msgs, want)
	}
	tail := msgs[len(msgs)-2:]
	if tail[0].Status != "Digest: "+imgDigest.String() || tail[1].Status != "Status: Downloaded newer image for "+reg+"/pull/app:1" {
		t.Errorf("stream ends %+v", tail)
	}
	if n := countStatus(msgs, "Pull complete"); n != 2 {
		t.Errorf("%d layers pulled, want 2: %+v", n, msgs)
	}
	if n := countStatus(msgs, "Download complete"); n != 2 {
		t.Errorf("%d layers downloaded, want 2: %+v", n, msgs)
	}
	_, im, err := ts.store.Resolve(reg + "/pull/app:1")
	if err != nil {
		t.Fatalf("the pulled image is not in the store: %v", err)
	}
	if im.ID != imgID || len(im.RepoDigests) != 1 || im.RepoDigests[0] != reg+"/pull/app@"+imgDigest.String() {
		t.Errorf("stored %s %v, want ID %s and repo digest @%s", im.ID, im.RepoDigests, imgID, imgDigest)
	}
	if raw, err := os.ReadFile(filepath.Join(baseCache, "index.json")); err != nil || !strings.Contains(string(raw), reg+"/pull/app:1") {
		t.Errorf("the base cache does not name the pulled tag: %v %s", err, raw)
	}

	status, msgs, body = pull(q, nil)
	if status != http.StatusOK || msgs[len(msgs)-1].Status != "Status: Image is up to date for "+reg+"/pull/app:1" || countStatus(msgs, "Already exists") != 2 {
		t.Errorf("second pull: %d %s %+v", status, body, msgs)
	}

	// By digest, as `docker pull NAME@sha256:…` sends it.
	status, msgs, body = pull(url.Values{"fromImage": {reg + "/pull/app"}, "tag": {imgDigest.String()}}.Encode(), nil)
	if status != http.StatusOK || msgs[0].ID != imgDigest.String() {
		t.Errorf("pull by digest: %d %s %+v", status, body, msgs)
	}

	authQ := url.Values{"fromImage": {authReg + "/private/app"}, "tag": {"2"}}.Encode()
	status, _, body = pull(authQ, nil)
	if status != http.StatusInternalServerError || !strings.Contains(body, "pulling "+authReg+"/private/app:2: no basic auth credentials") {
		t.Errorf("pull without credentials: %d %s, want 500 no basic auth credentials", status, body)
	}
	status, msgs, body = pull(authQ, registryAuth(t, map[string]string{"username": "puller", "password": "pullpass", "serveraddress": authReg}))
	if status != http.StatusOK || !strings.HasPrefix(msgs[len(msgs)-1].Status, "Status: Downloaded newer image for "+authReg+"/private/app:2") {
		t.Errorf("pull with X-Registry-Auth: %d %s %+v", status, body, msgs)
	}

	errs := []struct {
		query  string
		status int
		msg    string
	}{
		{url.Values{"fromImage": {reg + "/pull/app"}, "tag": {"nope"}}.Encode(), http.StatusNotFound, "manifest for " + reg + "/pull/app:nope not found: manifest unknown"},
		{url.Values{"fromImage": {reg + "/pull/none"}, "tag": {"1"}}.Encode(), http.StatusNotFound, "manifest for " + reg + "/pull/none:1 not found"},
		{url.Values{"fromSrc": {"-"}, "repo": {"x"}}.Encode(), http.StatusNotImplemented, "kiln does not import root filesystems"},
		{"tag=1", http.StatusBadRequest, "fromImage is required"},
		{url.Values{"fromImage": {reg + "/pull/app"}}.Encode(), http.StatusBadRequest, "docker pull --all-tags is not supported"},
		{url.Values{"fromImage": {"bad name"}}.Encode(), http.StatusBadRequest, "invalid reference format"},
		{url.Values{"fromImage": {strings.Repeat("a", 2000)}}.Encode(), http.StatusBadRequest, "too long"},
	}
	for _, e := range errs {
		status, _, body := pull(e.query, nil)
		if status != e.status || !strings.Contains(body, e.msg) {
			t.Errorf("pull %s: %d %s, want %d %q", e.query, status, body, e.status, e.msg)
		}
	}
}

func countStatus(msgs []message, status string) int {
	n := 0
	for _, m := range msgs {
		if m.Status == status {
			n++
		}
	}
	return n
}
