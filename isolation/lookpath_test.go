package isolation

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLookPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"a/tool", 0o755},
		{"b/tool", 0o755},
		{"a/plain", 0o644},
		{"b/plain", 0o755},
		{"b/onlyplain", 0o644},
		{"c/script", 0o755},
	} {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "a/subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, tc := range []struct {
		name, file, path, dir string
		want                  string
		wantCode              int
	}{
		{name: "first match wins", file: "tool", path: a + ":" + b, want: a + "/tool"},
		{name: "order matters", file: "tool", path: b + ":" + a, want: b + "/tool"},
		{name: "non-executable skipped", file: "plain", path: a + ":" + b, want: b + "/plain"},
		{name: "only non-executable", file: "onlyplain", path: b, wantCode: 126},
		{name: "directory is not a match", file: "subdir", path: a, wantCode: 126},
		{name: "not found", file: "nothing", path: a + ":" + b, wantCode: 127},
		{name: "empty PATH entry is the working directory", file: "script", path: ":/nonexistent", dir: c, want: c + "/script"},
		{name: "relative PATH entry", file: "script", path: "c", dir: dir, want: c + "/script"},
		{name: "slash means no search", file: "./script", path: a, dir: c, want: c + "/script"},
		{name: "absolute used as is", file: "/x/y", path: a, want: "/x/y"},
		{name: "empty name", file: "", path: a, wantCode: 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, se := lookPath(tc.file, tc.path, tc.dir)
			code := 0
			if se != nil {
				code = se.Code
			}
			if got != tc.want || code != tc.wantCode {
				t.Errorf("lookPath(%q) = %q, %+v; want %q, code %d", tc.file, got, se, tc.want, tc.wantCode)
			}
		})
	}
}

func TestPathFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{env: nil, want: defaultPath},
		{env: []string{"HOME=/root"}, want: defaultPath},
		{env: []string{"PATH=/a", "PATH=/b"}, want: "/b"},
		{env: []string{"PATH="}, want: ""},
		{env: []string{"XPATH=/x"}, want: defaultPath},
	} {
		if got := pathFromEnv(tc.env); got != tc.want {
			t.Errorf("pathFromEnv(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}
