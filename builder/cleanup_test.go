package builder_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder"
)

// scratchDirs lists the build scratch directories (build-*) in a state directory.
func scratchDirs(t *testing.T, stateDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(stateDir, "build-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With WithDeferredCleanup, Build leaves its scratch files (the stage root a RUN
// filled) to the caller, whose image stays whole after they are removed; without it,
// they are gone when Build returns.
func TestDeferredCleanup(t *testing.T) {
	w := newWorld(t)
	const df = "FROM BUSYBOX\nRUN mkdir /many && for i in 1 2 3 4 5; do echo $i > /many/$i; done\n"
	for _, deferred := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "deferred"}[deferred], func(t *testing.T) {
			var stateDir string
			var cleanup func() error
			handed := 0
			c := buildCase{dockerfile: df, workspace: func(ws *builder.Workspace) { stateDir = ws.StateDir }}
			if deferred {
				c.options = []builder.Option{builder.WithDeferredCleanup(func(f func() error) { cleanup = f; handed++ })}
			}
			res, _, err := w.build(t, c)
			if err != nil {
				t.Fatal(err)
			}
			left := scratchDirs(t, stateDir)
			if !deferred {
				if len(left) != 0 {
					t.Fatalf("scratch left after Build: %v", left)
				}
				return
			}
			if handed != 1 || len(left) != 1 {
				t.Fatalf("cleanup handed %d times, scratch dirs %v: want once, one dir left for it", handed, left)
			}
			if err := cleanup(); err != nil {
				t.Fatal(err)
			}
			if left := scratchDirs(t, stateDir); len(left) != 0 {
				t.Errorf("scratch left after the cleanup: %v", left)
			}
			if err := validate.Image(outputImage(t, res.Image)); err != nil {
				t.Errorf("image after the cleanup: %v", err)
			}
			wantFiles(t, files(t, res.Image), map[string]string{"/many/5": "f 0644 0:0 5\n"})
			if _, err := os.Stat(stateDir); err != nil {
				t.Errorf("state dir: %v", err)
			}
		})
	}
}
