package apiserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-build/kiln/builder"
)

func TestImagePrune(t *testing.T) {
	t.Parallel()
	q := func(f string) string { return "/v1.41/images/prune?filters=" + url.QueryEscape(f) }
	tests := []struct {
		name    string
		path    string
		deleted []string // images gone: "dangling", "labelled", "plain"
	}{
		{"default: dangling only", "/v1.41/images/prune", []string{"dangling"}},
		// [captured: image-prune]: the CLI's own filters
		{"dangling with a label nothing has", q(`{"dangling":{"true":true},"label":{"apicap-none":true}}`), nil},
		{"all (prune -a)", q(`{"dangling":{"false":true}}`), []string{"dangling", "labelled", "plain"}},
		{"all with a label", q(`{"dangling":{"false":true},"label":{"x=1":true}}`), []string{"labelled"}},
		{"all without a label", q(`{"dangling":{"false":true},"label!":{"x":true}}`), []string{"dangling", "plain"}},
		{"all until a date", q(`{"dangling":{"false":true},"until":{"1970-01-01T00:04:00Z":true}}`), []string{"dangling", "labelled"}},
		{"until a Unix time", q(`{"dangling":{"false":true},"until":{"150":true}}`), []string{"dangling"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newImageTestServer(t)
			ids := map[string]string{
				"dangling": ts.put(t, apiImage(t, time.Unix(100, 0), nil)).String(),
				"labelled": ts.put(t, apiImage(t, time.Unix(200, 0), map[string]string{"x": "1"}), "labelled").String(),
				"plain":    ts.put(t, apiImage(t, time.Unix(300, 0), nil), "plain").String(),
			}
			resp, body := ts.call(t, http.MethodPost, tt.path, nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if len(tt.deleted) == 0 {
				if string(body) != `{"ImagesDeleted":null,"SpaceReclaimed":0}`+"\n" {
					t.Errorf("nothing pruned: %s", body)
				}
				return
			}
			var got imagePruneBody
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			var deleted []string
			for _, d := range got.ImagesDeleted {
				for k, id := range ids {
					if d.Deleted == id {
						deleted = append(deleted, k)
					}
				}
			}
			if diff := cmp.Diff(tt.deleted, sortedStrings(deleted)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s\n%s", diff, body)
			}
			if got.SpaceReclaimed <= 0 {
				t.Errorf("SpaceReclaimed %d", got.SpaceReclaimed)
			}
			if list, _ := ts.store.List(); len(list) != len(ids)-len(tt.deleted) {
				t.Errorf("%d images left", len(list))
			}
		})
	}
}

func TestBuildPrune(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	old := filepath.Join(state, "api-build-old")
	oldLoad := filepath.Join(state, "api-load-old")
	other := filepath.Join(state, "not-scratch")
	for _, d := range []string{old, oldLoad, other} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sub", "f"), []byte("0123456789"), 0o644); err != nil {
			t.Fatal(err)
		}
		past := time.Now().Add(-time.Hour)
		if err := os.Chtimes(d, past, past); err != nil {
			t.Fatal(err)
		}
	}
	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Workspace: builder.Workspace{StateDir: state}}))
	// A build running now: its directory is newer than the server.
	running := filepath.Join(state, "api-build-running")
	if err := os.Mkdir(running, 0o755); err != nil {
		t.Fatal(err)
	}

	// [captured: builder-prune-all]: until=24h keeps what is younger than a day.
	resp, body := ts.call(t, http.MethodPost, "/v1.41/build/prune?all=1&filters="+url.QueryEscape(`{"until":{"24h":true}}`), nil, nil)
	if resp.StatusCode != 200 || string(body) != `{"CachesDeleted":null,"SpaceReclaimed":0}`+"\n" {
		t.Errorf("prune until=24h: %d %s", resp.StatusCode, body)
	}
	// [captured: builder-prune]
	resp, body = ts.call(t, http.MethodPost, "/v1.41/build/prune?filters=", nil, nil)
	if resp.StatusCode != 200 || string(body) != `{"CachesDeleted":["api-build-old","api-load-old"],"SpaceReclaimed":20}`+"\n" {
		t.Errorf("prune: %d %s", resp.StatusCode, body)
	}
	for _, d := range []string{old, oldLoad} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s survived", d)
		}
	}
	for _, d := range []string{other, running} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	resp, body = ts.call(t, http.MethodPost, "/v1.41/build/prune", nil, nil)
	if resp.StatusCode != 200 || string(body) != `{"CachesDeleted":null,"SpaceReclaimed":0}`+"\n" {
		t.Errorf("second prune: %d %s", resp.StatusCode, body)
	}
	resp, _ = ts.call(t, http.MethodPost, "/v1.41/build/prune?filters="+url.QueryEscape(`{"until":{"soon":true}}`), nil, nil)
	if resp.StatusCode != 400 {
		t.Errorf("bad until: %d", resp.StatusCode)
	}
}
