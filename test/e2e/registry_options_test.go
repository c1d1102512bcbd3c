package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/test/testworld"
)

// kilnBuild runs `kiln build` in chroot isolation with extra environment variables and
// returns its combined output and exit code.
func kilnBuild(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testworld.KilnBinary(t), append([]string{"build", "--isolation=chroot", "--log-format=text"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return buf.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("kiln build: %v", err)
	}
	return buf.String(), 0
}

// dockerConfigFor writes a docker config.json holding user:password for registry and
// returns the DOCKER_CONFIG directory.
func dockerConfigFor(t *testing.T, registry, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, registry, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBuildPushPermissionCheck: a destination that refuses the credentials fails the
// build before its first step, naming the destination and not the password;
// --skip-push-permission-check and --no-push skip the check.
func TestBuildPushPermissionCheck(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	authReg := authRegistry(t, "kiln", "s3cret")
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo built > /built\n"})
	dest := authReg + "/kiln-e2e/perm:" + uniqueTag()
	wrong := "DOCKER_CONFIG=" + dockerConfigFor(t, authReg, "kiln", "not-the-password")
	right := "DOCKER_CONFIG=" + dockerConfigFor(t, authReg, "kiln", "s3cret")

	tests := []struct {
		name    string
		env     string
		args    []string
		wantOK  bool
		want    []string // in the output
		notWant []string
	}{
		{
			name: "wrong password fails before the build", env: wrong,
			want:    []string{"checking push permission for " + dest, "UNAUTHORIZED"},
			notWant: []string{"Step 1/2", "not-the-password"},
		},
		{
			name: "check skipped: the build runs, the push fails", env: wrong, args: []string{"--skip-push-permission-check"},
			want:    []string{"Step 2/2 : RUN echo built", "pushing " + dest},
			notWant: []string{"checking push permission", "not-the-password"},
		},
		{name: "no push: no check", env: wrong, args: []string{"--no-push"}, wantOK: true},
		{name: "right password", env: right, wantOK: true, want: []string{"Pushed " + dest[:strings.LastIndex(dest, ":")]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, code := kilnBuild(t, []string{tt.env}, append([]string{"--context", "dir://" + ctx, "--destination", dest}, tt.args...)...)
			if (code == 0) != tt.wantOK {
				t.Fatalf("kiln build exited %d (want success %v):\n%s", code, tt.wantOK, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q:\n%s", w, out)
				}
			}
			t.Logf("took %v", time.Since(start))
		})
	}
}

// startPullThroughMirror runs Debian's docker-registry as a pull-through cache of
// upstream (proxy: remoteurl) on a free loopback port. It returns the mirror's
// host:port, its log file, and a function that stops it (also called when the test
// ends).
func startPullThroughMirror(t *testing.T, upstream string) (addr, logPath string, stop func()) {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("docker-registry is not installed (scripts/world.sh installs it)")
	}
	dir := t.TempDir()
	addr = "127.0.0.1:" + freePort(t)
	cfg := filepath.Join(dir, "config.yml")
	err := os.WriteFile(cfg, []byte(`version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: `+filepath.Join(dir, "data")+`}
http: {addr: `+addr+`}
proxy: {remoteurl: "http://`+upstream+`"}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "mirror.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	stopProcess := testworld.Start(t, cmd)
	stop = func() {
		stopProcess()
		logf.Close()
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, logPath, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pull-through mirror did not come up: %v", err)
		}
	}
}

// TestBuildThroughPullThroughMirror: --registry-map sends the base image's pull to a
// real pull-through cache of the test registry; with the cache down the build falls
// back to the registry itself, unless --skip-default-registry-fallback.
func TestBuildThroughPullThroughMirror(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	mirror, mirrorLog, stopMirror := startPullThroughMirror(t, reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nLABEL via=mirror\n"})
	mapping := "--registry-map=" + reg + "=" + mirror
	build := func(t *testing.T, args ...string) (string, int, string) {
		tarPath := filepath.Join(t.TempDir(), "img.tar")
		out, code := kilnBuild(t, nil, append([]string{"--context", "dir://" + ctx, "--no-push", "--tar-path", tarPath, "-d", "kiln-e2e/mirror:v1"}, args...)...)
		return out, code, tarPath
	}

	out, code, tarPath := build(t, mapping, "--skip-default-registry-fallback")
	if code != 0 {
		t.Fatalf("build through the mirror exited %d:\n%s", code, out)
	}
	// The mirror served the pull: it logged the manifest request, and its catalog
	// lists the repository it cached.
	logData, _ := os.ReadFile(mirrorLog)
	if !regexp.MustCompile(`GET /v2/busybox/manifests/`).Match(logData) {
		t.Errorf("the mirror's log shows no busybox manifest request:\n%s", tail(string(logData), 3000))
	}
	var catalog string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + mirror + "/v2/_catalog"); err == nil {
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if catalog = buf.String(); strings.Contains(catalog, `"busybox"`) {
				break
			}
		}
	}
	if !strings.Contains(catalog, `"busybox"`) {
		t.Errorf("the mirror's catalog %q does not list busybox", catalog)
	}
	checkBuiltOnBusybox(t, reg, tarPath, "mirror")

	stopMirror()
	t.Run("mirror down, fallback", func(t *testing.T) {
		out, code, tarPath := build(t, mapping)
		if code != 0 {
			t.Fatalf("build with the mirror down exited %d:\n%s", code, out)
		}
		checkBuiltOnBusybox(t, reg, tarPath, "mirror")
	})
	t.Run("mirror down, no fallback", func(t *testing.T) {
		out, code, _ := build(t, mapping, "--skip-default-registry-fallback")
		if code == 0 || !strings.Contains(out, mirror) {
			t.Fatalf("build exited %d, want a failure naming the mirror %s:\n%s", code, mirror, out)
		}
	})
}

// checkBuiltOnBusybox checks that the image in tarPath is the test registry's
// busybox:1.35 plus the label via=want.
func checkBuiltOnBusybox(t *testing.T, reg, tarPath, want string) {
	t.Helper()
	img, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg + "/busybox:1.35")
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	gotLayers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	baseLayers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(gotLayers) != len(baseLayers) {
		t.Fatalf("%d layers, want busybox's %d", len(gotLayers), len(baseLayers))
	}
	for i := range gotLayers {
		g, _ := gotLayers[i].DiffID()
		b, _ := baseLayers[i].DiffID()
		if g != b {
			t.Errorf("layer %d is %s, busybox's is %s", i, g, b)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Config.Labels["via"] != want {
		t.Errorf("labels %v (%v), want via=%s", cf.Config.Labels, err, want)
	}
}

// fakeECRImmutability is a hand-written fake of ECR's tag immutability in front of
// the test registry: a manifest PUT to a tag that exists is refused with ECR's status,
// code and message.
func fakeECRImmutability(t *testing.T, upstream string) string {
	t.Helper()
	target, _ := url.Parse("http://" + upstream)
	proxy := httputil.NewSingleHostReverseProxy(target)
	tagPut := regexp.MustCompile(`^/v2/(.+)/manifests/([^/:]+)$`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := tagPut.FindStringSubmatch(r.URL.Path); r.Method == http.MethodPut && m != nil {
			req, _ := http.NewRequest(http.MethodHead, target.String()+r.URL.Path, nil)
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprintf(w, `{"errors":[{"code":"TAG_INVALID","message":"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable."}]}`, m[2], m[1])
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestBuildPushImmutableTag pushes twice to one tag of a repository with immutable
// tags: the second push fails naming the tag, unless
// --push-ignore-immutable-tag-errors, which warns and succeeds.
func TestBuildPushImmutableTag(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	ecr := fakeECRImmutability(t, reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nARG N\nLABEL n=$N\n"})
	dest := ecr + "/kiln-e2e/immutable:" + uniqueTag()
	push := func(n string, args ...string) (string, int) {
		return kilnBuild(t, nil, append([]string{"--context", "dir://" + ctx, "-d", dest, "--build-arg", "N=" + n}, args...)...)
	}
	if out, code := push("1"); code != 0 {
		t.Fatalf("first push exited %d:\n%s", code, out)
	}
	if out, code := push("2"); code == 0 || !strings.Contains(out, dest) || !strings.Contains(out, "immutable") {
		t.Errorf("second push exited %d, want a failure naming %s and the immutability:\n%s", code, dest, out)
	}
	out, code := push("3", "--push-ignore-immutable-tag-errors")
	if code != 0 || !strings.Contains(out, "level=warning") || !strings.Contains(out, "immutable") {
		t.Errorf("push with --push-ignore-immutable-tag-errors exited %d, want success with a warning:\n%s", code, out)
	}
	// The tag still holds the first image.
	ref, err := name.ParseReference(dest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := img.ConfigFile(); err != nil || cf.Config.Labels["n"] != "1" {
		t.Errorf("the tag's image has labels %v (%v), want n=1", cf.Config.Labels, err)
	}
}
