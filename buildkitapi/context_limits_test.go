package buildkitapi

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Dockerfile's own ignore file (<Dockerfile>.dockerignore) chooses the context's
// files over .dockerignore, through this door as through BuildKit's frontend, also
// for a Dockerfile in a subdirectory of its local (buildctl --opt filename=sub/...).
func TestDockerfileOwnIgnoreFile(t *testing.T) {
	ts := newTestServer(t)
	for _, name := range []string{"Dockerfile", "sub/dir/Dockerfile"} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{
				name:                   "FROM " + ts.busybox + "\nCOPY . /ctx\nRUN test ! -e /ctx/secret && test -e /ctx/kept && test -e /ctx/other\n",
				name + ".dockerignore": "secret\n",
				".dockerignore":        "other\n",
				"secret":               "s\n",
				"kept":                 "k\n",
				"other":                "o\n",
			})
			if _, _, err := ts.solve(t, dir, map[string]string{"filename": name}); err != nil {
				t.Fatalf("the build saw the wrong files (%s.dockerignore not applied?): %v", name, err)
			}
		})
	}
}

// kiln serve's --max-context-entries and --max-context-size bound what a context
// holds, each entry counted once: a context exactly at both bounds builds, cold and
// again after one of its files changed (the incremental transfer sends only that
// file); one entry or one byte over fails naming the setting.
func TestContextLimitsCountEachEntryOnce(t *testing.T) {
	const files, fileSize = 9, 10 << 10
	const entries = 3 + files // Dockerfile, f0, d and the files in it
	context := func(t *testing.T, ts *testServer) (dir string, bytes int64) {
		t.Helper()
		contents := map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nCOPY f0 /f0\n", "f0": "0\n"}
		for i := range files {
			contents[fmt.Sprintf("d/f%d", i)] = strings.Repeat("x", fileSize)
		}
		for _, data := range contents {
			bytes += int64(len(data))
		}
		return writeFiles(t, contents), bytes
	}
	tests := []struct {
		name        string
		entries     int
		bytesOver   int64 // the size bound less the context's bytes
		incremental bool
		wantErr     string
	}{
		{name: "at the bounds", entries: entries, incremental: true},
		{name: "one entry over", entries: entries - 1,
			wantErr: fmt.Sprintf("the build context holds more than %d files and directories (kiln serve --max-context-entries)", entries-1)},
		{name: "one byte over", entries: entries, bytesOver: -1, wantErr: "bytes (kiln serve --max-context-size)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *Config) { c.MaxContextEntries = tt.entries })
			dir, bytes := context(t, ts)
			ts.cfg.MaxContextBytes = bytes + tt.bytesOver
			key := ""
			if tt.incremental {
				key = "limits"
			}
			_, _, err := ts.solveShared(t, key, dir, nil)
			if err == nil && tt.incremental {
				// Again with one file changed, same size: only it is sent.
				if err := os.WriteFile(filepath.Join(dir, "d", "f3"), []byte(strings.Repeat("y", fileSize)), 0o644); err != nil {
					t.Fatal(err)
				}
				_, _, err = ts.solveShared(t, key, dir, nil)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
