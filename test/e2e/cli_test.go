package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestBuildLoadPushRun builds with `kiln build` in chroot isolation, then checks the
// result the way a user would: docker load of --tar-path and docker run; docker pull of
// the pushed destination and docker run; the digest file names what was pushed.
func TestBuildLoadPushRun(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	docker := testworld.Docker(t)
	kiln := testworld.KilnBinary(t)

	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM ` + reg + `/busybox:1.35
ARG MSG=default
ENV WHO=kiln
COPY greeting.txt /srv/
RUN echo "$MSG from $WHO" > /srv/msg && rm /etc/shadow
WORKDIR /srv
CMD ["sh", "-c", "cat msg greeting.txt; test -e /etc/shadow && echo shadow-present || echo shadow-gone"]
`,
		"greeting.txt": "greetings\n",
	})
	out := t.TempDir()
	tag := uniqueTag()
	dest := reg + "/e2e/cli:" + tag
	removeImage(t, docker, dest)
	run(t, kiln, "build", "--isolation=chroot", "--context", "dir://"+ctx,
		"--destination", dest, "--tar-path", filepath.Join(out, "img.tar"),
		"--digest-file", filepath.Join(out, "digest"), "--build-arg", "MSG=hello",
		"--insecure", "--insecure-pull")

	want := "hello from kiln\ngreetings\nshadow-gone\n"
	run(t, docker, "load", "-i", filepath.Join(out, "img.tar"))
	if got := run(t, docker, "run", "--rm", "--network", "none", dest); got != want {
		t.Errorf("docker run of the loaded image printed %q, want %q", got, want)
	}
	run(t, docker, "rmi", "-f", dest)

	digest, err := os.ReadFile(filepath.Join(out, "digest"))
	if err != nil || !strings.HasPrefix(string(digest), "sha256:") {
		t.Fatalf("digest file: %q, %v", digest, err)
	}
	run(t, docker, "pull", "-q", dest)
	if got := run(t, docker, "run", "--rm", "--network", "none", dest); got != want {
		t.Errorf("docker run of the pushed image printed %q, want %q", got, want)
	}
	repoDigests := run(t, docker, "image", "inspect", "-f", "{{join .RepoDigests \" \"}}", dest)
	if !strings.Contains(repoDigests, string(digest)) {
		t.Errorf("pushed image digests %q do not include the digest file's %s", repoDigests, digest)
	}
}

// TestFailingRunExitCode checks that kiln exits with a failing RUN's exit code and names
// the Dockerfile line, as the issue asks.
func TestFailingRunExitCode(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	kiln := testworld.KilnBinary(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN true\nRUN exit 3\n",
	})
	out, code := tryRun(kiln, "build", "--isolation=chroot", "--context", ctx, "--no-push", "--insecure-pull")
	if code != 3 {
		t.Errorf("exit code %d, want 3\n%s", code, out)
	}
	if !strings.Contains(out, "Dockerfile:3") || !strings.Contains(out, "returned a non-zero code: 3") {
		t.Errorf("message does not name the line and code:\n%s", out)
	}

	ctx = writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN --mount=type=weird,target=/c true\n"})
	out, code = tryRun(kiln, "build", "--isolation=chroot", "--context", ctx, "--no-push", "--insecure-pull")
	if code != 1 || !strings.Contains(out, "Dockerfile:2") || !strings.Contains(out, "weird") {
		t.Errorf("RUN --mount of an unknown type: exit %d, want 1 with a message naming line 2 and the type:\n%s", code, out)
	}
}
