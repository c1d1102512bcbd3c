package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

// TestBuildPruneStepCache checks /build/prune's rule for the step cache (the one
// builder.CachePrune holds for both doors): until= keeps what was used lately even
// with all=1, keep-storage keeps that many bytes, and a bad size is a 400.
func TestBuildPruneStepCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cacheDir := t.TempDir()
	lc, err := builder.NewLocalCache(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(cmd string, age time.Duration) {
		t.Helper()
		sum := sha256.Sum256([]byte(cmd))
		key := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		if err := lc.Put(ctx, key, &builder.CachedStep{History: v1.History{CreatedBy: cmd}}); err != nil {
			t.Fatal(err)
		}
		used := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(cacheDir, "steps", key.Hex+".json"), used, used); err != nil {
			t.Fatal(err)
		}
	}
	put("RUN old", 48*time.Hour)
	put("RUN new", time.Minute)
	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Workspace: builder.Workspace{StateDir: t.TempDir(), Cache: lc}}))
	tests := []struct {
		name, query string
		status      int
		want        string
	}{
		{"bad keep-storage", "keep-storage=lots", http.StatusBadRequest, ""},
		{"all=1 until=24h keeps the recent entry", "all=1&filters=" + url.QueryEscape(`{"until":{"24h":true}}`), 200,
			`{"CachesDeleted":["1 cached build steps"],"SpaceReclaimed":`},
		{"keep-storage above the cache's size", "keep-storage=1000000", 200, `{"CachesDeleted":null,"SpaceReclaimed":0}`},
		{"everything", "", 200, `{"CachesDeleted":["1 cached build steps"],"SpaceReclaimed":`},
	}
	for _, tt := range tests {
		resp, body := ts.call(t, http.MethodPost, "/v1.41/build/prune?"+tt.query, nil, nil)
		if resp.StatusCode != tt.status || (tt.want != "" && !strings.HasPrefix(string(body), tt.want)) {
			t.Errorf("%s: %d %s, want %d %s…", tt.name, resp.StatusCode, body, tt.status, tt.want)
		}
	}
	if recs, err := lc.Usage(ctx); err != nil || len(recs) != 0 {
		t.Errorf("after the prunes the cache holds %v (%v)", recs, err)
	}
}
