package e2e

import (
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestBuildFailureClassCLI: kiln build's error line ends with the failure's class
// (builder.Classify), and its exit code is a failed RUN's own, 1 for the others.
func TestBuildFailureClassCLI(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	kiln := testworld.KilnBinary(t)
	for _, tt := range []struct {
		name, dockerfile, want string
		code                   int
	}{
		{"RUN failed", "FROM " + reg + "/busybox:1.35\nRUN exit 3\n", "[RUN failed (exit code 3)]", 3},
		{"missing base image", "FROM " + reg + "/kiln-e2e/nothere:1\n", "[registry error (" + reg + ": not found)]", 1},
		{"Dockerfile error", "FROM " + reg + "/busybox:1.35\nCOPY nothere /\n", "[user error (dockerfile or context)]", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := writeContext(t, map[string]string{"Dockerfile": tt.dockerfile})
			out, code := tryRun(kiln, "build", "--isolation=chroot", "--context", ctx, "--no-push", "--insecure-pull", "--state-dir", t.TempDir())
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want %d and %q in\n%s", code, tt.code, tt.want, out)
			}
		})
	}
}
