package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushLines renders a push stream as the CLI prints it without a terminal: statuses
// with their layer ID, no "Pushing" lines, and the error.
func pushLines(t *testing.T, raw []byte) []string {
	t.Helper()
	var lines []string
	for _, m := range streamMessages(t, raw) {
		switch {
		case m.Error != "":
			lines = append(lines, "ERROR "+m.Error)
		case m.Aux != nil:
			var aux pushAux
			raw, _ := json.Marshal(m.Aux)
			if err := json.Unmarshal(raw, &aux); err != nil {
				t.Fatalf("aux %s: %v", raw, err)
			}
			raw, _ = json.Marshal(aux)
			lines = append(lines, "AUX "+string(raw))
		case m.Status == "Pushing":
		case m.ID != "":
			lines = append(lines, m.ID+": "+m.Status)
		default:
			lines = append(lines, m.Status)
		}
	}
	return lines
}

func TestPush(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, "", "")
	ts := newImageTestServer(t)
	repo := reg + "/apicap/x"
	img := apiImage(t, time.Unix(100, 0), nil)
	id := ts.put(t, img, repo+":1", repo+":2")
	digest, _ := img.Digest()
	raw, _ := img.RawManifest()
	cfg, _ := img.ConfigFile()
	// dockerd names layers by diff ID, top layer first.
	top, bottom := cfg.RootFS.DiffIDs[1].Hex[:12], cfg.RootFS.DiffIDs[0].Hex[:12]
	digestLine := func(tag string) []string {
		return []string{
			fmt.Sprintf("%s: digest: %s size: %d", tag, digest, len(raw)),
			fmt.Sprintf(`AUX {"Tag":"%s","Digest":"%s","Size":%d}`, tag, digest, len(raw)),
		}
	}

	// [captured: push-noauth]
	resp, body := ts.call(t, http.MethodPost, "/v1.41/images/"+repo+"/push?tag=1", nil, http.Header{"X-Registry-Auth": {"e30="}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("push: %d %s", resp.StatusCode, body)
	}
	lines := pushLines(t, body)
	want := append([]string{
		"The push refers to repository [" + repo + "]",
		top + ": Preparing", bottom + ": Preparing",
	}, digestLine("1")...)
	// Both layers are uploaded, in either order, between the Preparing and digest lines.
	pushed := lines[3:5]
	if !cmp.Equal(sortedStrings(pushed), sortedStrings([]string{top + ": Pushed", bottom + ": Pushed"})) {
		t.Errorf("layer lines %v", pushed)
	}
	if diff := cmp.Diff(want, append(lines[:3:3], lines[5:]...)); diff != "" {
		t.Errorf("push stream (-want +got):\n%s\nfull: %s", diff, body)
	}
	// The aux message is dockerd's, bytes and all.
	wantAux := fmt.Sprintf(`{"progressDetail":{},"aux":{"Tag":"1","Digest":"%s","Size":%d}}`+"\r\n", digest, len(raw))
	if !strings.Contains(string(body), wantAux) {
		t.Errorf("no %s in %s", wantAux, body)
	}
	if !strings.Contains(string(body), `{"status":"Preparing","id":"`+top+`","progressDetail":{}}`) {
		t.Errorf("Preparing not in dockerd's shape: %s", body)
	}
	ref1, err := name.ParseReference(repo + ":1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref1)
	if err != nil {
		t.Fatalf("the registry lacks the image: %v", err)
	}
	if d, _ := got.Digest(); d != digest {
		t.Errorf("registry has %s, want %s", d, digest)
	}
	_, im, _ := ts.store.Resolve(id.String())
	if want := []string{repo + "@" + digest.String()}; !cmp.Equal(im.RepoDigests, want) {
		t.Errorf("RepoDigests after push = %v, want %v", im.RepoDigests, want)
	}

	// [captured: push-noauth-alltags]: no tag pushes every tag, the layers already there.
	_, body = ts.call(t, http.MethodPost, "/v1.41/images/"+repo+"/push", nil, http.Header{"X-Registry-Auth": {"e30="}})
	want = []string{"The push refers to repository [" + repo + "]"}
	for _, tag := range []string{"1", "2"} {
		want = append(want, top+": Preparing", bottom+": Preparing", top+": Layer already exists", bottom+": Layer already exists")
		want = append(want, digestLine(tag)...)
	}
	if diff := cmp.Diff(want, pushLines(t, body)); diff != "" {
		t.Errorf("push -a stream (-want +got):\n%s", diff)
	}

	// [captured: push-missing]
	_, body = ts.call(t, http.MethodPost, "/v1.41/images/"+reg+"/apicap/nope/push?tag=latest", nil, http.Header{"X-Registry-Auth": {"e30="}})
	want = []string{"The push refers to repository [" + reg + "/apicap/nope]", "ERROR An image does not exist locally with the tag: " + reg + "/apicap/nope"}
	if diff := cmp.Diff(want, pushLines(t, body)); diff != "" {
		t.Errorf("push of a missing image (-want +got):\n%s", diff)
	}
	_, body = ts.call(t, http.MethodPost, "/v1.41/images/"+reg+"/apicap/nope/push", nil, nil)
	if diff := cmp.Diff(want, pushLines(t, body)); diff != "" {
		t.Errorf("push -a of a missing repository (-want +got):\n%s", diff)
	}
	// docker push fake/img: the CLI sends docker.io/fake/img; the repository line says so.
	_, body = ts.call(t, http.MethodPost, "/v1.41/images/docker.io/fake/img/push?tag=latest", nil, nil)
	want = []string{"The push refers to repository [docker.io/fake/img]", "ERROR An image does not exist locally with the tag: fake/img"}
	if diff := cmp.Diff(want, pushLines(t, body)); diff != "" {
		t.Errorf("push to Docker Hub (-want +got):\n%s", diff)
	}
}

func TestPushAuth(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t, "apicap", "apicappass")
	ts := newImageTestServer(t)
	repo := reg + "/apicap/y"
	img := apiImage(t, time.Unix(100, 0), nil)
	ts.put(t, img, repo)
	digest, _ := img.Digest()
	tests := []struct {
		name    string
		header  http.Header
		wantErr string
	}{
		// [captured: push-auth-nologin]
		{"no credentials", http.Header{"X-Registry-Auth": {"e30="}}, "no basic auth credentials"},
		{"no header", nil, "no basic auth credentials"},
		{"undecodable header", http.Header{"X-Registry-Auth": {"%%%"}}, "no basic auth credentials"},
		{"wrong password", registryAuth(t, map[string]string{"username": "apicap", "password": "wrong", "serveraddress": reg}), "unauthorized: authentication required"},
		{"credentials for another registry", registryAuth(t, map[string]string{"username": "apicap", "password": "apicappass", "serveraddress": "127.0.0.1:1"}), "no basic auth credentials"},
		// [captured: push-auth]
		{"right credentials", registryAuth(t, map[string]string{"username": "apicap", "password": "apicappass", "serveraddress": reg}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := ts.call(t, http.MethodPost, "/v1.41/images/"+repo+"/push?tag=latest", nil, tt.header)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d (registry errors go in-stream): %s", resp.StatusCode, body)
			}
			msgs := streamMessages(t, body)
			if got := streamError(msgs); got != tt.wantErr {
				t.Errorf("error %q, want %q", got, tt.wantErr)
			}
			if tt.wantErr != "" {
				last := msgs[len(msgs)-1]
				if last.ErrorDetail == nil || last.ErrorDetail.Message != tt.wantErr || last.ErrorDetail.Code != 0 {
					t.Errorf("last message %+v, want dockerd's errorDetail", last)
				}
				if strings.Contains(string(body), "apicappass") || strings.Contains(string(body), `"wrong"`) {
					t.Errorf("stream quotes a password: %s", body)
				}
				return
			}
			if !strings.Contains(string(body), "latest: digest: "+digest.String()) {
				t.Errorf("no digest line: %s", body)
			}
			ref, err := name.ParseReference(repo)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "apicap", Password: "apicappass"})); err != nil {
				t.Errorf("image not in the registry after the authenticated push: %v", err)
			}
		})
	}
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
