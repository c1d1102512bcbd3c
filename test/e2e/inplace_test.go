package e2e

import (
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestInPlaceInUnprivilegedContainer builds kiln's own image with kiln (deploy/Dockerfile),
// loads it into dockerd, and runs a build in --isolation=inplace inside an unprivileged
// container (default capabilities, no --privileged), pushing to the test registry. The
// pushed image must then run in docker. A RUN under a non-root USER gets the user's
// supplementary groups there too.
func TestInPlaceInUnprivilegedContainer(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	docker := testworld.Docker(t)
	image := kilnImage(t, docker)

	// A build inside it, in place.
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM ` + reg + `/busybox:1.35
COPY app.sh /app/app.sh
RUN chmod 0755 /app/app.sh && echo built-in-place > /app/marker && rm -rf /home \
 && echo 'u:x:1100:1100::/:/bin/sh' >> /etc/passwd && echo 'ug:x:1100:' >> /etc/group \
 && echo 'dev:x:3000:u' >> /etc/group && mkdir -m 0775 /app/shared && chown 0:3000 /app/shared
USER u
RUN id > /app/shared/id
USER root
ENTRYPOINT ["/app/app.sh"]
`,
		"app.sh": "#!/bin/sh\ncat /app/marker\ntest -d /home && echo home-present || echo home-gone\ntest -e /kiln && echo kiln-leaked || echo clean\n" +
			"cat /app/shared/id\nstat -c %u:%g /app/shared/id\n",
	})
	dest := reg + "/e2e/inplace:" + uniqueTag()
	removeImage(t, docker, dest)
	out := run(t, docker, "run", "--rm", "--network", "host",
		"-v", ctx+":/workspace:ro", image,
		"--context", "dir:///workspace", "--destination", dest, "--insecure", "--insecure-pull")
	run(t, docker, "pull", "-q", dest)
	got := run(t, docker, "run", "--rm", "--network", "none", dest)
	// USER u's RUN has u's supplementary groups (as under dockerd), so it may write in
	// a directory only its group dev may write to.
	want := "built-in-place\nhome-gone\nclean\n" +
		"uid=1100(u) gid=1100(ug) groups=1100(ug),3000(dev)\n1100:1100\n"
	if got != want {
		t.Errorf("image built in place printed %q, want %q\nkiln output:\n%s", got, want, out)
	}
	// Docker's default seccomp profile refuses the RUN's user namespace: kiln says
	// what that leaves open (--inplace-namespaces=auto).
	if !strings.Contains(out, "In-place RUN gets no namespaces of its own here") {
		t.Errorf("no warning about the missing namespaces in kiln's output:\n%s", out)
	}
}

// TestInPlaceHidesSecrets runs an in-place build inside a container whose seccomp
// profile allows user namespaces (Kubernetes' default, Unconfined): kiln gives each RUN
// its own namespaces, and a RUN that tries to read the registry credentials mounted at
// kaniko's path, kiln's own directory (/kiln, which holds kiln and its docker config)
// or kiln's environment and root through /proc (kiln is PID 1) finds nothing, while the build itself pushes with those credentials. In a
// container under Docker's default seccomp profile (TestInPlaceInUnprivilegedContainer)
// kiln warns and runs RUN as kaniko does.
func TestInPlaceHidesSecrets(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	docker := testworld.Docker(t)
	image := kilnImage(t, docker)

	const fileSecret, envSecret = "file-secret-5f1c0a", "env-secret-77b2e9"
	dockerCfg := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("robot:" + fileSecret))
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"),
		[]byte(`{"auths":{"`+reg+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM ` + reg + `/busybox:1.35
RUN (cat /kaniko/.docker/config.json; ls -A /kiln; cat /proc/1/environ; cat /proc/1/root/kaniko/.docker/config.json) \
     > /leak 2>&1; echo ran >> /leak
`,
	})
	// With --inplace-namespaces=off (kaniko's model) the same RUN reads the file: the
	// control that shows the probe can see a leak.
	for _, mode := range []string{"on", "off"} {
		dest := reg + "/e2e/inplace-hidden:" + mode + uniqueTag()
		removeImage(t, docker, dest)
		out := run(t, docker, "run", "--rm", "--network", "host", "--security-opt", "seccomp=unconfined",
			"-e", "KILN_TEST_ENV_SECRET="+envSecret,
			"-v", ctx+":/workspace:ro", "-v", dockerCfg+":/kaniko/.docker:ro", image,
			"--context", "dir:///workspace", "--destination", dest, "--insecure", "--insecure-pull",
			"--inplace-namespaces="+mode)
		run(t, docker, "pull", "-q", dest)
		got := run(t, docker, "run", "--rm", "--network", "none", dest, "cat", "/leak")
		t.Logf("--inplace-namespaces=%s: the RUN saw:\n%s", mode, got)
		if !strings.HasSuffix(got, "ran\n") {
			t.Errorf("the RUN's output %q lacks its last line", got)
		}
		if mode == "off" {
			if !strings.Contains(got, auth) {
				t.Errorf("--inplace-namespaces=off: the RUN did not read the credentials; the probe is blind")
			}
			continue
		}
		for _, secret := range []string{fileSecret, auth, envSecret, "kiln"} {
			if strings.Contains(got, secret) {
				t.Errorf("the RUN read %q\nkiln output:\n%s", secret, out)
			}
		}
	}
}

// kilnImage builds kiln's own image with kiln (deploy/Dockerfile), loads it into
// dockerd and returns its tag; it is removed when the test ends.
func kilnImage(t *testing.T, docker string) string {
	t.Helper()
	kiln := testworld.KilnBinary(t)
	imgCtx := t.TempDir()
	// the context deploy/Dockerfile copies from, as scripts/image.sh makes it (the
	// binary, CA certificates, kaniko's paths)
	fill := exec.Command("../../scripts/image.sh", "context", imgCtx)
	fill.Env = append(os.Environ(), "KILN_BIN="+kiln)
	if out, err := fill.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh context: %v\n%s", err, out)
	}
	dockerfile, err := filepath.Abs("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ref := "kiln-e2e/kiln:" + uniqueTag()
	removeImage(t, docker, ref)
	tarPath := filepath.Join(t.TempDir(), "kiln.tar")
	run(t, kiln, "build", "--isolation=chroot", "--context", imgCtx, "--dockerfile", dockerfile,
		"--destination", ref, "--no-push", "--tar-path", tarPath)
	run(t, docker, "load", "-i", tarPath)
	return ref
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
