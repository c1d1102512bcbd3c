package testworld

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestDeclaresModule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		gomod string
		want  bool
	}{
		{"module github.com/kiln-build/kiln\n\ngo 1.26\n", true},
		{"// comment\nmodule \"github.com/kiln-build/kiln\"\n", true},
		{"module github.com/kiln-build/kiln/v2\n", false},
		{"module example.com/other\n", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := declaresModule([]byte(tt.gomod), modulePath); got != tt.want {
			t.Errorf("declaresModule(%q) = %v, want %v", tt.gomod, got, tt.want)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	// this package lives at test/testworld in the module
	if want := filepath.Dir(filepath.Dir(wd)); root != want {
		t.Errorf("moduleRoot(%s) = %s, want %s", wd, root, want)
	}
	if _, err := moduleRoot(t.TempDir()); err == nil {
		t.Error("moduleRoot outside the module succeeded")
	}
}

func TestRemoveStale(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	live := binDirPrefix + strconv.Itoa(os.Getpid())
	dead := binDirPrefix + "999999999" // above Linux's pid_max
	other := binDirPrefix + "notapid"
	for _, d := range []string{live, dead, other} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, d+".lock"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(tmp)
	tests := []struct {
		name string
		want bool
	}{
		{live, true}, {live + ".lock", true},
		{dead, false}, {dead + ".lock", false},
		{other, true}, {other + ".lock", true},
	}
	for _, tt := range tests {
		_, err := os.Stat(filepath.Join(tmp, tt.name))
		if got := err == nil; got != tt.want {
			t.Errorf("after removeStale, %s exists = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBuildOnce builds a stand-in main package twice into one directory: the second call
// must reuse the first binary, and the binary must run. (Building the real ./cmd/kiln is
// left to the tests that call KilnBinary.)
func TestBuildOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build; skipped with -short")
	}
	t.Parallel()
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":       "module example.com/hello\n\ngo 1.21\n",
		"cmd/hi/hi.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n",
	}
	for name, content := range files {
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	ctx := context.Background()
	first, err := buildOnce(ctx, mod, "./cmd/hi", tmp, 1)
	if err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	second, err := buildOnce(ctx, mod, "./cmd/hi", tmp, 1)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(second)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Errorf("second buildOnce rebuilt: %s then %s", first, second)
	}
	out, err := exec.CommandContext(ctx, first).CombinedOutput()
	if err != nil || string(out) != "hi\n" {
		t.Errorf("%s: %q, %v; want \"hi\\n\"", first, out, err)
	}
	if _, err := buildOnce(ctx, mod, "./cmd/missing", t.TempDir(), 1); err == nil {
		t.Error("buildOnce of a missing package succeeded")
	}
}
