package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// listWorld holds the images of the images* captures in miniature: one built image
// with labels and three tags, one older untagged (dangling) image.
type listWorld struct {
	ts              *imageTestServer
	built, dangling v1.Hash
	size            int64
}

func newListWorld(t *testing.T) listWorld {
	t.Helper()
	ts := newImageTestServer(t)
	built := ts.put(t, apiImage(t, time.Unix(1795334976, 0), map[string]string{"from.dockerfile": "yes"}),
		"apicap-basic", "apicap-basic:v2", "127.0.0.1:5010/apicap/x:1")
	dangling := ts.put(t, apiImage(t, time.Unix(1795334689, 0), nil))
	_, im, err := ts.store.Resolve(built.String())
	if err != nil {
		t.Fatal(err)
	}
	return listWorld{ts: ts, built: built, dangling: dangling, size: im.Size}
}

func TestListImages(t *testing.T) {
	t.Parallel()
	w := newListWorld(t)
	builtJSON := fmt.Sprintf(`{"Containers":-1,"Created":1795334976,"Id":"%s","Labels":{"from.dockerfile":"yes"},"ParentId":"","RepoDigests":null,"RepoTags":["127.0.0.1:5010/apicap/x:1","apicap-basic:latest","apicap-basic:v2"],"SharedSize":-1,"Size":%d,"VirtualSize":%d}`, w.built, w.size, w.size)
	filteredJSON := strings.Replace(builtJSON, `"127.0.0.1:5010/apicap/x:1",`, "", 1)
	danglingJSON := fmt.Sprintf(`{"Containers":-1,"Created":1795334689,"Id":"%s","Labels":null,"ParentId":"","RepoDigests":["<none>@<none>"],"RepoTags":["<none>:<none>"],"SharedSize":-1,"Size":1024,"VirtualSize":1024}`, w.dangling)
	q := func(filters string) string { return "?filters=" + url.QueryEscape(filters) }
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"all, newest first", "/v1.41/images/json", 200, "[" + builtJSON + "," + danglingJSON + "]"},
		{"unversioned", "/images/json", 200, "[" + builtJSON + "," + danglingJSON + "]"},
		{"reference pattern narrows the tags", "/v1.41/images/json" + q(`{"reference":{"apicap*":true}}`), 200, "[" + filteredJSON + "]"},
		{"docker images NAME", "/v1.41/images/json" + q(`{"reference":{"apicap-basic":true}}`), 200, "[" + filteredJSON + "]"},
		{"legacy list form", "/v1.41/images/json" + q(`{"reference":["apicap*"]}`), 200, "[" + filteredJSON + "]"},
		{"reference matching nothing", "/v1.41/images/json" + q(`{"reference":{"nope*":true}}`), 200, "[]"},
		{"dangling=true", "/v1.41/images/json" + q(`{"dangling":{"true":true}}`), 200, "[" + danglingJSON + "]"},
		{"dangling=false", "/v1.41/images/json" + q(`{"dangling":{"false":true}}`), 200, "[" + builtJSON + "]"},
		{"label key", "/v1.41/images/json" + q(`{"label":{"from.dockerfile":true}}`), 200, "[" + builtJSON + "]"},
		{"label key=value", "/v1.41/images/json" + q(`{"label":{"from.dockerfile=no":true}}`), 200, "[]"},
		{"label!", "/v1.41/images/json" + q(`{"label!":{"from.dockerfile":true}}`), 200, "[" + danglingJSON + "]"},
		{"before", "/v1.41/images/json" + q(`{"before":{"apicap-basic":true}}`), 200, "[" + danglingJSON + "]"},
		{"since", "/v1.41/images/json" + q(`{"since":{"`+w.dangling.String()+`":true}}`), 200, "[" + builtJSON + "]"},
		{"API 1.44 drops VirtualSize", "/v1.44/images/json" + q(`{"dangling":{"false":true}}`), 200,
			"[" + strings.Replace(builtJSON, fmt.Sprintf(`,"VirtualSize":%d`, w.size), "", 1) + "]"},
		{"filters not JSON", "/v1.41/images/json?filters=%7Bnope", 400, `{"message":"invalid filter"}`},
		{"unknown filter", "/v1.41/images/json" + q(`{"colour":{"red":true}}`), 400, `{"message":"invalid filter 'colour'"}`},
		{"bad dangling value", "/v1.41/images/json" + q(`{"dangling":{"maybe":true}}`), 400, `{"message":"invalid filter 'dangling=maybe'"}`},
		{"before a missing image", "/v1.41/images/json" + q(`{"before":{"nope":true}}`), 404, `{"message":"No such image: nope:latest"}`},
		{"malformed pattern", "/v1.41/images/json" + q(`{"reference":{"[":true}}`), 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := w.ts.call(t, http.MethodGet, tt.path, nil, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want exactly application/json", ct)
			}
			if tt.want != "" && string(body) != tt.want+"\n" {
				t.Errorf("body\n got %s\nwant %s", body, tt.want)
			}
		})
	}
}

func TestInspectImage(t *testing.T) {
	t.Parallel()
	w := newListWorld(t)
	resp, body := w.ts.call(t, http.MethodGet, "/v1.41/images/apicap-basic/json", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	// Keys in dockerd 20.10's order [captured: image-inspect].
	var raw json.RawMessage = body
	wantKeys := []string{"Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
		"DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver", "RootFS", "Metadata"}
	if diff := cmp.Diff(wantKeys, topLevelKeys(t, string(raw))); diff != "" {
		t.Errorf("inspect keys (-want +got):\n%s", diff)
	}
	var got imageInspect
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	img, _, err := w.ts.store.Resolve("apicap-basic")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	var layers []string
	for _, d := range cfg.RootFS.DiffIDs {
		layers = append(layers, d.String())
	}
	if got.ID != w.built.String() ||
		!cmp.Equal(got.RepoTags, []string{"127.0.0.1:5010/apicap/x:1", "apicap-basic:latest", "apicap-basic:v2"}) ||
		got.RepoDigests == nil || len(got.RepoDigests) != 0 ||
		got.Created != "2026-11-22T08:09:36Z" ||
		got.Os != "linux" || got.Architecture != "amd64" ||
		!cmp.Equal(got.Config.Cmd, []string{"cat", "/hello.txt"}) ||
		got.Config.Labels["from.dockerfile"] != "yes" ||
		got.Size != w.size || got.VirtualSize == nil || *got.VirtualSize != w.size ||
		got.RootFS.Type != "layers" || !cmp.Equal(got.RootFS.Layers, layers) ||
		got.Metadata.LastTagTime.IsZero() {
		t.Errorf("inspect = %s", body)
	}
	// Empty config fields print as dockerd prints them.
	for _, frag := range []string{`"RepoDigests":[]`, `"Entrypoint":null`, `"Volumes":null`, `"Hostname":""`, `"ContainerConfig":{"Hostname":""`} {
		if !strings.Contains(string(body), frag) {
			t.Errorf("inspect lacks %s: %s", frag, body)
		}
	}

	for _, ref := range []string{w.built.String(), w.built.String()[7:19], "docker.io/library/apicap-basic:v2", "127.0.0.1:5010/apicap/x:1"} {
		resp, body := w.ts.call(t, http.MethodGet, "/v1.41/images/"+ref+"/json", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), w.built.String()) {
			t.Errorf("inspect %s: %d %s", ref, resp.StatusCode, body)
		}
	}

	resp, body = w.ts.call(t, http.MethodGet, "/v1.41/images/apicap-doesnotexist/json", nil, nil)
	if resp.StatusCode != 404 || string(body) != `{"message":"no such image: apicap-doesnotexist: No such image: apicap-doesnotexist:latest"}`+"\n" {
		t.Errorf("inspect missing: %d %s", resp.StatusCode, body)
	}
	resp, body = w.ts.call(t, http.MethodGet, "/v1.41/images/Upper/json", nil, nil)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid reference format") {
		t.Errorf("inspect Upper: %d %s", resp.StatusCode, body)
	}
}

func TestTagImage(t *testing.T) {
	t.Parallel()
	w := newListWorld(t)
	tests := []struct {
		path   string
		status int
		body   string
		tagged string // must then resolve to the built image
	}{
		{"/v1.41/images/apicap-basic/tag?repo=127.0.0.1%3A5011%2Fapicap%2Fy&tag=latest", 201, "", "127.0.0.1:5011/apicap/y:latest"},
		{"/v1.41/images/apicap-basic/tag?repo=docker.io%2Flibrary%2Fmybox&tag=latest", 201, "", "mybox"},
		{"/v1.41/images/" + w.built.String() + "/tag?repo=localhost%3A5000%2Fa%2Fb&tag=c", 201, "", "localhost:5000/a/b:c"},
		{"/v1.41/images/apicap-basic/tag?repo=fake%2Fimg", 201, "", "fake/img:latest"},
		{"/v1.41/images/nope/tag?repo=x&tag=1", 404, `{"message":"No such image: nope:latest"}` + "\n", ""},
		{"/v1.41/images/apicap-basic/tag?repo=UPPER&tag=1", 400, "", ""},
		{"/v1.41/images/apicap-basic/tag?repo=x&tag=bad%20tag", 400, "", ""},
		{"/v1.41/images/apicap-basic/tag", 400, "", ""},
	}
	for _, tt := range tests {
		resp, body := w.ts.call(t, http.MethodPost, tt.path, nil, nil)
		if resp.StatusCode != tt.status || (tt.status == 201 && len(body) != 0) || (tt.body != "" && string(body) != tt.body) {
			t.Errorf("POST %s: %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
		if tt.tagged == "" {
			continue
		}
		if _, im, err := w.ts.store.Resolve(tt.tagged); err != nil || im.ID != w.built {
			t.Errorf("after POST %s, %s resolves to %v, %v", tt.path, tt.tagged, im, err)
		}
	}
}

func TestDeleteImage(t *testing.T) {
	t.Parallel()
	w := newListWorld(t)
	short := w.built.String()[7:19]
	tests := []struct {
		method, path string
		status       int
		want         string
	}{
		// [captured: rmi-inuse]: a tag of a many-tagged image only untags.
		{"DELETE", "/v1.41/images/apicap-basic", 200, `[{"Untagged":"apicap-basic:latest"}]`},
		// [captured: rmi-missing]
		{"DELETE", "/v1.41/images/apicap-nope", 404, `{"message":"No such image: apicap-nope:latest"}`},
		{"DELETE", "/v1.41/images/" + short, 409, `{"message":"conflict: unable to delete ` + short + ` (must be forced) - image is referenced in multiple repositories"}`},
		{"DELETE", "/v1.41/images/" + short + "?force=1", 200,
			`[{"Untagged":"127.0.0.1:5010/apicap/x:1"},{"Untagged":"apicap-basic:v2"},{"Deleted":"` + w.built.String() + `"}]`},
		{"DELETE", "/v1.41/images/" + w.dangling.String() + "?noprune=1", 200, `[{"Deleted":"` + w.dangling.String() + `"}]`},
		{"DELETE", "/v1.41/images/Bad%20Name", 400, ""},
	}
	for _, tt := range tests {
		resp, body := w.ts.call(t, tt.method, tt.path, nil, nil)
		if resp.StatusCode != tt.status || (tt.want != "" && string(body) != tt.want+"\n") {
			t.Errorf("%s %s: %d %s\nwant %d %s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.want)
		}
	}
	if list, _ := w.ts.store.List(); len(list) != 0 {
		t.Errorf("images left: %+v", list)
	}
}

// TestServerSurvivesBadInput sends malformed requests to every image endpoint; each
// must get a 4xx answer in Docker's error shape, and the server must go on serving.
func TestServerSurvivesBadInput(t *testing.T) {
	t.Parallel()
	w := newListWorld(t)
	tests := []struct {
		method, path, body string
	}{
		{"GET", "/v1.41/images/UPPER/json", ""},
		{"GET", "/v1.41/images/a%20b/json", ""},
		{"GET", "/v1.41/images/:/json", ""},
		{"GET", "/v1.41/images/json?filters=%5B%5D", ""},
		{"GET", "/v1.41/images/json?filters=null%7D", ""},
		{"GET", "/v1.41/images/get", ""},
		{"GET", "/v1.41/images/get?names=nope", ""},
		{"GET", "/v1.41/images/get?names=" + url.QueryEscape("@@"), ""},
		{"POST", "/v1.41/images/load", "this is not a tar archive at all, not even close....................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................."},
		{"POST", "/v1.41/images/load", ""},
		{"POST", "/v1.41/images/load", "\x1f\x8b garbage gzip"},
		{"POST", "/v1.41/images/prune?filters=%7B", ""},
		{"POST", "/v1.41/images/prune?filters=" + url.QueryEscape(`{"dangling":{"sometimes":true}}`), ""},
		{"POST", "/v1.41/images/prune?filters=" + url.QueryEscape(`{"until":{"yesterday":true}}`), ""},
		{"POST", "/v1.41/build/prune?filters=" + url.QueryEscape(`{"id":{"x":true}}`), ""},
		{"POST", "/v1.41/images/UPPER/push?tag=1", ""},
		{"POST", "/v1.41/images/x/push?tag=a%20b", ""},
		{"POST", "/v1.41/images/apicap-basic/tag?repo=%3A%3A", ""},
		{"POST", "/v1.41/auth", "{not json"},
		{"POST", "/v1.41/auth", `{"username":"u","password":"p","serveraddress":"bad host name/x"}`},
		{"DELETE", "/v1.41/images/" + url.PathEscape("x@sha256:zz"), ""},
	}
	for _, tt := range tests {
		resp, body := w.ts.call(t, tt.method, tt.path, strings.NewReader(tt.body), nil)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s: status %d, want 4xx; body %s", tt.method, tt.path, resp.StatusCode, body)
		}
		var e struct{ Message string }
		if err := json.Unmarshal(body, &e); err != nil || e.Message == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: not Docker's error shape: %s %q", tt.method, tt.path, resp.Header.Get("Content-Type"), body)
		}
		if strings.Contains(string(body), `"p"`) {
			t.Errorf("%s %s: the answer quotes a password: %s", tt.method, tt.path, body)
		}
		if resp, _ := w.ts.call(t, "GET", "/v1.41/images/json", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("after %s %s the server answers %d", tt.method, tt.path, resp.StatusCode)
		}
	}
}

func TestImageEndpointsWithoutStore(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, p := range []string{"/images/json", "/images/x/json"} {
		resp, body := do(t, ts, "GET", p, nil)
		if resp.StatusCode != 500 || !strings.Contains(body, "no image store") {
			t.Errorf("GET %s without a store: %d %s", p, resp.StatusCode, body)
		}
	}
}
