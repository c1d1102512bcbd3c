package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// authRegistry starts Debian's docker-registry with htpasswd authentication on a free
// loopback port for one test and returns its host:port.
func authRegistry(t *testing.T, user, password string) string {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("docker-registry is not installed (scripts/world.sh installs it)")
	}
	if _, err := exec.LookPath("htpasswd"); err != nil {
		t.Skip("htpasswd is not installed (apache2-utils; scripts/world.sh installs it)")
	}
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	run(t, "htpasswd", "-Bbc", htpasswd, user, password)
	addr := "127.0.0.1:" + freePort(t)
	cfg := filepath.Join(dir, "config.yml")
	err := os.WriteFile(cfg, []byte(`version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: `+filepath.Join(dir, "data")+`}
http: {addr: `+addr+`}
auth:
  htpasswd: {realm: kiln-e2e, path: `+htpasswd+`}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	testworld.Start(t, cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("authenticated registry did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServerLoginAndPushWithAuth: docker login through kiln (/auth), then docker push
// to a registry that requires it; without login the push fails with an auth error, and a
// wrong password fails the login.
func TestServerLoginAndPushWithAuth(t *testing.T) {
	reg := testworld.Registry(t)
	s := startServer(t)
	authReg := authRegistry(t, "kiln", "s3cret")
	cfgDir := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + cfgDir}
	ref := authReg + "/kiln-e2e/private:" + uniqueTag()
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo private > /p\n"})
	s.mustDocker(t, "build", "-t", ref, ctx)

	if out, code := s.docker(t, env, "", "push", ref); code == 0 {
		t.Errorf("push without login succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "auth") {
		t.Errorf("push without login: the error does not mention authentication:\n%s", out)
	}
	if out, code := s.docker(t, env, "", "login", authReg, "-u", "kiln", "-p", "wrong"); code == 0 {
		t.Errorf("login with a wrong password succeeded:\n%s", out)
	}
	if out, code := s.docker(t, env, "", "login", authReg, "-u", "kiln", "-p", "s3cret"); code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: exit %d\n%s", code, out)
	}
	out, code := s.docker(t, env, "", "push", ref)
	if code != 0 || !strings.Contains(out, "digest: sha256:") {
		t.Fatalf("docker push after login: exit %d\n%s", code, out)
	}
	// The registry has it: a manifest HEAD with the same credentials answers 200.
	req, _ := http.NewRequest(http.MethodHead, "http://"+authReg+"/v2/kiln-e2e/private/manifests/"+ref[strings.LastIndex(ref, ":")+1:], nil)
	req.SetBasicAuth("kiln", "s3cret")
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("manifest not in the authenticated registry: %v %v", err, resp)
	}
}
