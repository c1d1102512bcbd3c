package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// sharedDialectCases are the shared corpus's cases written in BuildKit's dialect, which
// Docker's classic builder cannot build: BuildKit is their oracle. (buildkit/heredoc_copy
// is not among them: its `adduser` is not in the test world's busybox, so BuildKit
// fails it too.)
var sharedDialectCases = []string{"buildkit/heredoc_run_basic", "buildkit/run_mount_cache"}

// sharedKnownDiffs are the deliberate differences of shared cases (the shared corpus is
// read-only: its cases cannot carry a known-diff.txt).
var sharedKnownDiffs = map[string]string{
	"heredoc_run_basic": "BuildKit sets WorkingDir \"/\" on a FROM scratch stage; kiln leaves it unset, as the classic builder does",
	"run_mount_cache":   "BuildKit commits an empty layer for a RUN that changes nothing; kiln drops it, as the classic builder does",
}

// TestBuildKitDialect builds every case of corpus/buildkit-dialect (and the shared
// corpus's dialect cases) with the reference BuildKit (buildkitd v0.34 through
// buildctl, scripts/buildkit-tools.sh) and with kiln build, and compares the two images
// with the shared harness (diffbuild compare: flattened filesystem and config).
//
// A case is a directory with a Dockerfile and its context. Optional files:
// buildctl.args and kiln.args (one argument per line, {dir} replaced by the case's
// directory) pass secrets and the like to each builder; known-diff.txt says why kiln
// deliberately differs, which docs/conformance.md repeats: the diff is then logged,
// not failed.
func TestBuildKitDialect(t *testing.T) {
	testworld.RequireRoot(t)
	testworld.Registry(t)
	harness, err := filepath.Abs("../../../shared/conformance")
	if err != nil {
		t.Fatal(err)
	}
	diffbuild := filepath.Join(harness, "diffbuild")
	if _, err := os.Stat(diffbuild); err != nil {
		t.Skipf("no conformance harness beside the repository (%v)", err)
	}
	cases, err := filepath.Glob(filepath.Join("corpus", "buildkit-dialect", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		cases[i] = filepath.Dir(c)
	}
	for _, c := range sharedDialectCases {
		cases = append(cases, filepath.Join(harness, "corpus", c))
	}
	if len(cases) == 0 {
		t.Skip("no dialect cases")
	}
	buildctl := testworld.Buildctl(t)
	addr := testworld.StartBuildkitd(t)
	kiln := testworld.KilnBinary(t)
	for _, dir := range cases {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			dir, err := filepath.Abs(dir)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			oracle, candidate := filepath.Join(out, "buildkit.tar"), filepath.Join(out, "kiln.tar")
			args := append([]string{"--addr", addr, "build", "--frontend", "dockerfile.v0",
				"--local", "context=" + dir, "--local", "dockerfile=" + dir,
				"--output", "type=docker,name=dialect-" + name + ",dest=" + oracle}, caseArgs(t, dir, "buildctl.args")...)
			if hasSyntaxLine(t, dir) {
				// buildkitd would fetch the frontend image; its built-in one is the oracle.
				args = append(args, "--opt", "cmdline=builtin")
			}
			if o, err := exec.Command(buildctl, args...).CombinedOutput(); err != nil {
				t.Fatalf("BuildKit: %v\n%s", err, tailOf(string(o), 3000))
			}
			kargs := append([]string{"build", "--isolation=chroot", "--context", "dir://" + dir,
				"--dockerfile", filepath.Join(dir, "Dockerfile"), "--destination", "dialect-" + name, "--no-push",
				"--tar-path", candidate, "--insecure", "--insecure-pull", "--state-dir", filepath.Join(out, "state")},
				caseArgs(t, dir, "kiln.args")...)
			if o, err := exec.Command(kiln, kargs...).CombinedOutput(); err != nil {
				t.Fatalf("kiln: %v\n%s", err, tailOf(string(o), 3000))
			}
			o, err := exec.Command(diffbuild, "compare", oracle, candidate).CombinedOutput()
			if err == nil {
				return
			}
			why, rerr := os.ReadFile(filepath.Join(dir, "known-diff.txt"))
			if rerr != nil && sharedKnownDiffs[name] != "" {
				why, rerr = []byte(sharedKnownDiffs[name]), nil
			}
			if rerr == nil {
				t.Logf("known difference (%s):\n%s", strings.TrimSpace(string(why)), o)
				return
			}
			t.Errorf("kiln's image differs from BuildKit's: %v\n%s", err, tailOf(string(o), 4000))
		})
	}
}

// caseArgs reads a case's extra arguments for one builder.
func caseArgs(t *testing.T, dir, file string) []string {
	data, err := os.ReadFile(filepath.Join(dir, file))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			args = append(args, strings.ReplaceAll(l, "{dir}", dir))
		}
	}
	return args
}

// hasSyntaxLine reports whether the case's Dockerfile asks for a frontend image.
func hasSyntaxLine(t *testing.T, dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") {
			return false
		}
		if k, _, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "#")), "="); ok && strings.EqualFold(strings.TrimSpace(k), "syntax") {
			return true
		}
	}
	return false
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
