package apiserver

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/builder"
)

// TestBuildPruneMountCache checks that GET /system/df lists the cache mount
// directories (RUN --mount=type=cache) as exec.cachemount records and that POST
// /build/prune removes them, reporting their ids and sizes.
func TestBuildPruneMountCache(t *testing.T) {
	t.Parallel()
	mounts := t.TempDir()
	id := strings.Repeat("c1", 32)
	entry := filepath.Join(mounts, id)
	if err := os.MkdirAll(filepath.Join(entry, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"id": "/go-build", "data/f": "0123456789", "lock": ""} {
		if err := os.WriteFile(filepath.Join(entry, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(entry, past, past); err != nil {
		t.Fatal(err)
	}
	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Workspace: builder.Workspace{StateDir: t.TempDir(), MountCacheDir: mounts}}))

	resp, body := ts.call(t, http.MethodGet, "/v1.41/system/df", nil, nil)
	var df struct {
		BuildCache []struct {
			ID, Type, Description string
			Size                  int64
		}
	}
	if err := json.Unmarshal(body, &df); err != nil || resp.StatusCode != 200 {
		t.Fatalf("df: %d %s (%v)", resp.StatusCode, body, err)
	}
	if len(df.BuildCache) != 1 || df.BuildCache[0].ID != id || df.BuildCache[0].Type != "exec.cachemount" ||
		df.BuildCache[0].Description != "cached mount /go-build" || df.BuildCache[0].Size != 19 {
		t.Errorf("df build cache %+v, want the one cache mount of 19 bytes", df.BuildCache)
	}
	resp, body = ts.call(t, http.MethodPost, "/v1.41/build/prune", nil, nil)
	if resp.StatusCode != 200 || string(body) != `{"CachesDeleted":["`+id+`"],"SpaceReclaimed":19}`+"\n" {
		t.Errorf("prune: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Errorf("%s survived the prune (%v)", entry, err)
	}
}
