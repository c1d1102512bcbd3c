package deploy

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.yaml.in/yaml/v3"

	"github.com/kiln-build/kiln/test/testworld"
)

// imageEntry is what the image's filesystem holds at a path.
type imageEntry struct {
	typ    byte
	target string // a symlink's
}

// buildImage builds deploy/<dockerfile> with kiln (chroot isolation, a temporary state
// directory) from the context scripts/image.sh prepares, and returns the docker-load
// tarball's path.
func buildImage(t *testing.T, kiln, ctxDir, dockerfile, tag string) string {
	t.Helper()
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kiln, "build", "--isolation=chroot", "--state-dir", t.TempDir(),
		"--context", "dir://"+ctxDir, "--dockerfile", filepath.Join(root, "deploy", dockerfile),
		"--destination", tag, "--no-push", "--tar-path", out, "--reproducible")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kiln build deploy/%s: %v\n%s", dockerfile, err, b)
	}
	return out
}

// imageContents returns the image's environment and its flattened filesystem.
func imageContents(t *testing.T, path string) (env []string, files map[string]imageEntry) {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	files = map[string]imageEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"), "/")
		files[name] = imageEntry{typ: h.Typeflag, target: h.Linkname}
	}
	return cfg.Config.Env, files
}

// TestImageKanikoPaths builds kiln's images from deploy/Dockerfile and
// deploy/Dockerfile.debug and checks that kaniko's paths are there: /kaniko/executor
// and /kaniko/warmer run kiln, DOCKER_CONFIG is /kaniko/.docker, /kaniko/ssl holds the
// CA certificates kiln trusts, and the debug image has kaniko's /busybox shell. With a
// docker daemon it then runs kaniko's CI script in the debug image (runKanikoScript).
func TestImageKanikoPaths(t *testing.T) {
	testworld.RequireRoot(t) // chroot isolation
	kiln := testworld.KilnBinary(t)
	ctxDir := t.TempDir()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "image.sh"), "context", ctxDir)
	cmd.Env = append(os.Environ(), "KILN_BIN="+kiln)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh context: %v\n%s", err, b)
	}
	common := map[string]imageEntry{
		"/kiln/kiln":                          {typ: tar.TypeReg},
		"/kaniko/executor":                    {typ: tar.TypeSymlink, target: "/kiln/kiln"},
		"/kaniko/warmer":                      {typ: tar.TypeSymlink, target: "/kiln/kiln"},
		"/kaniko/.docker":                     {typ: tar.TypeDir},
		"/kiln/.docker":                       {typ: tar.TypeSymlink, target: "/kaniko/.docker"},
		"/kaniko/ssl":                         {typ: tar.TypeSymlink, target: "/kiln/ssl"},
		"/kaniko/docker-credential-ecr-login": {typ: tar.TypeSymlink, target: "/kiln/kiln"},
		"/kaniko/docker-credential-gcr":       {typ: tar.TypeSymlink, target: "/kiln/kiln"},
		"/kaniko/docker-credential-acr-env":   {typ: tar.TypeSymlink, target: "/kiln/kiln"},
		"/kiln/ssl/certs/ca-certificates.crt": {typ: tar.TypeReg},
	}
	for _, c := range []struct {
		dockerfile string
		extra      map[string]imageEntry
		path       string
	}{
		{"Dockerfile", nil, "PATH=/kiln:/kaniko"},
		{"Dockerfile.debug", map[string]imageEntry{"/busybox/sh": {typ: tar.TypeSymlink, target: "busybox"}, "/busybox/busybox": {typ: tar.TypeReg}}, "PATH=/kiln:/kaniko:/busybox"},
	} {
		t.Run(c.dockerfile, func(t *testing.T) {
			tag := "kiln-test/image:" + strings.ToLower(strings.ReplaceAll(c.dockerfile, ".", "-"))
			tarPath := buildImage(t, kiln, ctxDir, c.dockerfile, tag)
			env, files := imageContents(t, tarPath)
			for p, want := range common {
				if got, ok := files[p]; !ok || got != want {
					t.Errorf("%s: %s is %+v (present %v), want %+v", c.dockerfile, p, got, ok, want)
				}
			}
			for p, want := range c.extra {
				if got, ok := files[p]; !ok || got != want {
					t.Errorf("%s: %s is %+v (present %v), want %+v", c.dockerfile, p, got, ok, want)
				}
			}
			for _, want := range []string{c.path, "DOCKER_CONFIG=/kaniko/.docker/", "SSL_CERT_DIR=/kiln/ssl/certs"} {
				if !slices.Contains(env, want) {
					t.Errorf("%s: env %q lacks %q", c.dockerfile, env, want)
				}
			}
			if c.dockerfile == "Dockerfile.debug" {
				runKanikoScript(t, tarPath, tag)
			}
		})
	}
}

// kanikoScript is kaniko's GitLab CI recipe with its credential check: write
// /kaniko/.docker/config.json, run /kaniko/executor. A credHelpers entry naming a
// helper that does not exist must fail the build naming it (so kiln read that file),
// then an auths entry lets the same command push to the test registry.
const kanikoScript = `set -e
cd /workspace
printf 'FROM %s\nRUN echo switched > /switched\n' "$BASE" > Dockerfile
echo "{\"credHelpers\":{\"$REG\":\"kiln-test-missing\"}}" > /kaniko/.docker/config.json
if /kaniko/executor --context "$PWD" --dockerfile Dockerfile --destination "$REG/kiln-test/kaniko-switch:1" --insecure --insecure-pull 2>/workspace/err; then
  echo "built although config.json names a missing credential helper"; exit 10
fi
grep -q kiln-test-missing /workspace/err || { echo "the failure does not name the helper:"; cat /workspace/err; exit 11; }
# kaniko's documented ECR setup names the helper its image ships; kiln answers for it,
# and for a registry ECR does not own the answer is "not found": anonymous.
echo '{"credsStore":"ecr-login","credHelpers":{"gcr.io":"gcr","kiln.azurecr.io":"acr-env"}}' > /kaniko/.docker/config.json
/kaniko/executor --context "$PWD" --dockerfile Dockerfile --destination "$REG/kiln-test/kaniko-switch:0" --insecure --insecure-pull
echo "$REG" | docker-credential-ecr-login get | grep -q "credentials not found in native keychain"
docker-credential-gcr list | grep -q '{}'
echo "{\"auths\":{\"$REG\":{\"auth\":\"a2lsbjp0ZXN0\"}}}" > /kaniko/.docker/config.json
/kaniko/executor --context "$PWD" --dockerfile Dockerfile --destination "$REG/kiln-test/kaniko-switch:1" --insecure --insecure-pull --digest-file /workspace/digest
/kaniko/warmer --help | grep -q "kiln warm"
executor version | grep -q "^kiln "
echo KANIKO-SWITCH-OK
`

// runKanikoScript loads the debug image into the test world's docker engine and runs
// kanikoScript in it, then the kaniko-style job of deploy/examples/gitlab as written,
// as a CI runner would: /busybox/sh, the image's own environment, the workspace a
// volume.
func runKanikoScript(t *testing.T, tarPath, tag string) {
	t.Helper()
	docker := testworld.Docker(t)
	reg := testworld.Registry(t)
	if docker == "" || reg == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, docker, "load", "-i", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, b)
	}
	t.Cleanup(func() { _ = exec.Command(docker, "rmi", "-f", tag).Run() })
	run := func(ws, script string, env ...string) string {
		t.Helper()
		name := fmt.Sprintf("kiln-test-kaniko-switch-%d", os.Getpid())
		args := []string{"run", "--rm", "--name", name, "--network", "host", "-v", ws + ":/workspace"}
		for _, e := range env {
			args = append(args, "-e", e)
		}
		args = append(args, "--entrypoint", "/busybox/sh", tag, "-c", script)
		out, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
		if err != nil {
			_ = exec.Command(docker, "rm", "-f", name).Run()
			t.Fatalf("in kiln's debug image: %v\n%s\nscript:\n%s", err, out, script)
		}
		return string(out)
	}

	ws := t.TempDir()
	if out := run(ws, kanikoScript, "BASE="+reg+"/"+testworld.BusyboxRepoTag, "REG="+reg); !strings.Contains(out, "KANIKO-SWITCH-OK") {
		t.Fatalf("kaniko's script did not finish:\n%s", out)
	}
	if d, err := os.ReadFile(filepath.Join(ws, "digest")); err != nil || !strings.HasPrefix(string(d), "sha256:") {
		t.Errorf("--digest-file: %q, %v", d, err)
	}

	// deploy/examples/gitlab's kaniko-style job, its script lines as GitLab runs them
	ws = t.TempDir()
	df := "FROM " + reg + "/" + testworld.BusyboxRepoTag + " AS test\nRUN echo tested > /tested\n" +
		"FROM " + reg + "/" + testworld.BusyboxRepoTag + "\nARG VERSION\nRUN echo \"$VERSION\" > /version\n"
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "set -e\n" + strings.Join(gitlabScript(t, "build-image"), "\n") + "\necho GITLAB-JOB-OK\n"
	out := run(ws, script, "CI_REGISTRY="+reg, "CI_REGISTRY_USER=kiln", "CI_REGISTRY_PASSWORD=test",
		"CI_PROJECT_DIR=/workspace", "CI_REGISTRY_IMAGE="+reg+"/kiln-test/gitlab-recipe", "CI_COMMIT_SHORT_SHA=0123abc")
	if !strings.Contains(out, "GITLAB-JOB-OK") {
		t.Fatalf("the GitLab job did not finish:\n%s", out)
	}
}

// gitlabScript returns the script lines of a job in deploy/examples/gitlab/gitlab-ci.yml.
func gitlabScript(t *testing.T, job string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "examples", "gitlab", "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]yaml.Node // jobs, and stages:, variables: of other shapes
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	node := doc[job]
	var j struct {
		Script []string `yaml:"script"`
	}
	if err := node.Decode(&j); err != nil || len(j.Script) == 0 {
		t.Fatalf("gitlab-ci.yml: job %s has no script (%v)", job, err)
	}
	return j.Script
}
