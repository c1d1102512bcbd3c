package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestServerDockerBuild drives `kiln serve` with the real docker CLI the way a user
// does: legacy builds (with DOCKER_BUILDKIT=0 and without, as CLI 28 without buildx
// does), image commands, and the built image loaded into a real dockerd and run.
func TestServerDockerBuild(t *testing.T) {
	reg := testworld.Registry(t)
	dockerCLI := testworld.Docker(t)
	s := startServer(t)
	tag := uniqueTag()
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + `/busybox:1.35 AS base
ARG V=unset
LABEL from-file=yes
COPY . /ctx/
RUN echo "v=$V" > /v
CMD ["sh", "-c", "cat /v; ls /ctx"]
FROM base AS other
RUN echo other > /other
`,
		"sub/Dockerfile": "FROM " + reg + "/busybox:1.35\nCOPY kept.txt /sub-kept\n",
		".dockerignore":  "secret.txt\n",
		"secret.txt":     "do not ship\n",
		"kept.txt":       "kept\n",
	})
	iid := filepath.Join(t.TempDir(), "iid")

	for _, env := range [][]string{{"DOCKER_BUILDKIT=0"}, nil} {
		name := "kiln-e2e/a-" + tag
		out, code := s.docker(t, env, "", "build", "-t", name+":1", "-t", name+":2", "--build-arg", "V=7",
			"--label", "cli=yes", "--target", "base", "--iidfile", iid, ctx)
		if code != 0 {
			t.Fatalf("docker build (%v): exit %d\n%s", env, code, out)
		}
		for _, want := range []string{"Step 1/", "Successfully built", "Successfully tagged " + name + ":1", "Successfully tagged " + name + ":2"} {
			if !strings.Contains(out, want) {
				t.Errorf("docker build output lacks %q:\n%s", want, out)
			}
		}
	}
	name := "kiln-e2e/a-" + tag
	id, _ := os.ReadFile(iid)
	inspect := s.mustDocker(t, "image", "inspect", "-f", "{{.Id}} {{index .Config.Labels \"cli\"}} {{index .Config.Labels \"from-file\"}}", name+":1")
	if want := string(id) + " yes yes"; strings.TrimSpace(inspect) != want {
		t.Errorf("inspect = %q, want %q (iidfile + labels)", inspect, want)
	}
	if images := s.mustDocker(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(images, name+":1") || !strings.Contains(images, name+":2") {
		t.Errorf("docker images lacks the tags:\n%s", images)
	}
	s.mustDocker(t, "tag", name+":1", name+":3")
	s.mustDocker(t, "rmi", name+":2")
	images := s.mustDocker(t, "images", "--format", "{{.Repository}}:{{.Tag}}")
	if !strings.Contains(images, name+":3") || strings.Contains(images, name+":2") {
		t.Errorf("after tag and rmi, docker images shows:\n%s", images)
	}

	// -q prints only the ID; -f picks another Dockerfile; -f - reads it from stdin.
	// (the CLI's own DEPRECATED notice goes to stderr, which this output includes)
	out := strings.TrimSpace(s.mustDocker(t, "build", "-q", "--no-cache", "-f", filepath.Join(ctx, "sub", "Dockerfile"), ctx))
	if last := out[strings.LastIndex(out, "\n")+1:]; !strings.HasPrefix(last, "sha256:") || len(last) != 71 || strings.Contains(out, "Step 1/") {
		t.Errorf("docker build -q printed %q, want only the image ID", out)
	}
	if out, code := s.docker(t, nil, "FROM "+reg+"/busybox:1.35\nRUN echo from-stdin\n", "build", "-f", "-", ctx); code != 0 || !strings.Contains(out, "from-stdin") {
		t.Errorf("docker build -f -: exit %d\n%s", code, out)
	}

	// save from kiln, load into the real dockerd, run.
	archive := filepath.Join(t.TempDir(), "a.tar")
	s.mustDocker(t, "save", "-o", archive, name+":1")
	removeImage(t, dockerCLI, name+":1")
	run(t, dockerCLI, "load", "-i", archive)
	got := run(t, dockerCLI, "run", "--rm", "--network", "none", name+":1")
	if strings.Contains(got, "secret.txt") || !strings.Contains(got, "v=7") || !strings.Contains(got, "kept.txt") {
		t.Errorf("the built image printed %q: want v=7 and the context without the ignored secret.txt", got)
	}
}

// TestServerBuildFailures checks the CLI-visible failure modes: a failing RUN makes
// docker exit with its code and Docker's message; a syntax error exits 1 naming the line.
func TestServerBuildFailures(t *testing.T) {
	reg := testworld.Registry(t)
	s := startServer(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo failing; exit 3\n"})
	out, code := s.docker(t, []string{"DOCKER_BUILDKIT=0"}, "", "build", ctx)
	if code != 3 || !strings.Contains(out, "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3") {
		t.Errorf("failing RUN: exit %d, want 3 with Docker's message:\n%s", code, out)
	}
	ctx = writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUNN true\n"})
	out, code = s.docker(t, nil, "", "build", ctx)
	if code != 1 || !strings.Contains(out, "line 2") {
		t.Errorf("syntax error: exit %d, want 1 with the line:\n%s", code, out)
	}
	// The server still serves.
	s.mustDocker(t, "version")
}

// TestServerPushAndPull pushes a kiln-built image to the registry with docker push and
// runs it from there in the real dockerd.
func TestServerPushAndPull(t *testing.T) {
	reg := testworld.Registry(t)
	dockerCLI := testworld.Docker(t)
	s := startServer(t)
	ref := reg + "/kiln-e2e/pushed:" + uniqueTag()
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo pushed > /p\nCMD [\"cat\", \"/p\"]\n"})
	s.mustDocker(t, "build", "-t", ref, ctx)
	out := s.mustDocker(t, "push", ref)
	if !strings.Contains(out, "digest: sha256:") {
		t.Errorf("docker push output lacks the digest line:\n%s", out)
	}
	removeImage(t, dockerCLI, ref)
	run(t, dockerCLI, "pull", "-q", ref)
	if got := run(t, dockerCLI, "run", "--rm", "--network", "none", ref); got != "pushed\n" {
		t.Errorf("pushed image printed %q", got)
	}
}

// TestServerConcurrentClients runs five docker builds at once: all succeed.
func TestServerConcurrentClients(t *testing.T) {
	reg := testworld.Registry(t)
	s := startServer(t, "--max-concurrent-builds", "2")
	tag := uniqueTag()
	var wg sync.WaitGroup
	errs := make([]string, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo client-" + string(rune('a'+i)) + " > /who && sleep 1\n"})
			out, code := s.docker(t, nil, "", "build", "-t", "kiln-e2e/conc-"+tag+":"+string(rune('a'+i)), ctx)
			if code != 0 {
				errs[i] = out
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("client %d failed:\n%s", i, e)
		}
	}
}
