package apiserver

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestBuildContextInMemory builds from contexts extracted into the memory directory
// first: one that fits, and one that outgrows it after its first file and moves to the
// state directory mid-extraction. Both build, and nothing is left behind in either
// directory.
func TestBuildContextInMemory(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	body := contextTar(t, map[string]string{
		"Dockerfile": "FROM " + w.busybox + "\nCOPY a.txt b.txt /in/\nRUN cat /in/a.txt /in/b.txt\n",
		"a.txt":      "first file\n",
		"b.txt":      "second file\n",
	})
	for _, tt := range []struct {
		name  string
		limit int64
	}{{"fits in memory", 1 << 20}, {"moves to disk", 4}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mem := t.TempDir()
			ts := newBuildServer(t, BuildConfig{MemoryDir: mem, MemoryContextBytes: tt.limit})
			resp := postBuild(t, ts.URL, "", body, nil)
			if resp.status != http.StatusOK || !strings.Contains(resp.text(), "first file\nsecond file\n") || resp.last().ErrorDetail != nil {
				t.Fatalf("HTTP %d %s\n%s", resp.status, resp.body, resp.text())
			}
			if left, _ := os.ReadDir(mem); len(left) != 0 {
				t.Errorf("the memory directory still holds %d entries", len(left))
			}
			if left := stateLeftovers(t, ts); len(left) != 0 {
				t.Errorf("the state directory still holds %q", left)
			}
		})
	}
}
