package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestServerDockerCommands drives the docker commands beyond build against `kiln
// serve` with the real CLI: docker pull from the test registry, docker history of a
// kiln-built image printed exactly as dockerd prints it for the same image (loaded
// into dockerd), and docker system df showing the store and the build cache.
func TestServerDockerCommands(t *testing.T) {
	reg := testworld.Registry(t)
	dockerCLI := testworld.Docker(t)
	s := startServer(t)
	base := reg + "/busybox:1.35"

	out := s.mustDocker(t, "pull", base)
	for _, want := range []string{"1.35: Pulling from busybox", "Digest: sha256:", "Status: Downloaded newer image for " + base} {
		if !strings.Contains(out, want) {
			t.Errorf("docker pull printed no %q:\n%s", want, out)
		}
	}
	if out := s.mustDocker(t, "pull", base); !strings.Contains(out, "Status: Image is up to date for "+base) {
		t.Errorf("second docker pull:\n%s", out)
	}

	name := "kiln-e2e/history-" + uniqueTag() + ":1"
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo hi > /f && mkdir /d\nENV X=1\nCOPY a /a\nLABEL l=v\n",
		"a":          strings.Repeat("kiln ", 1000),
	})
	s.mustDocker(t, "build", "-t", name, ctx)
	format := "{{.ID}}|{{.CreatedAt}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
	kiln := s.mustDocker(t, "history", "--no-trunc", "--format", format, name)
	pretty := s.mustDocker(t, "history", name)

	archive := t.TempDir() + "/h.tar"
	s.mustDocker(t, "save", "-o", archive, name)
	removeImage(t, dockerCLI, name)
	run(t, dockerCLI, "load", "-i", archive)
	dockerd := run(t, dockerCLI, "history", "--no-trunc", "--format", format, name)
	if kiln != dockerd {
		t.Errorf("docker history differs from dockerd's for the same image:\nkiln:\n%s\ndockerd:\n%s", kiln, dockerd)
	}
	if lines := strings.Split(strings.TrimSpace(pretty), "\n"); len(lines) != 6 || !strings.HasPrefix(lines[0], "IMAGE ") || !strings.HasPrefix(lines[2], "<missing> ") {
		t.Errorf("docker history:\n%s", pretty)
	}

	df := s.mustDocker(t, "system", "df")
	for _, re := range []string{`(?m)^Images +2 +0 `, `(?m)^Containers +0 +0 +0B +0B$`, `(?m)^Build Cache +[1-9]`} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("docker system df does not match %s:\n%s", re, df)
		}
	}
	dfv := s.mustDocker(t, "system", "df", "-v")
	for _, want := range []string{"Images space usage:", "kiln-e2e/history-", "busybox", "Build cache usage:", "base-image", "regular"} {
		if !strings.Contains(dfv, want) {
			t.Errorf("docker system df -v lacks %q:\n%s", want, dfv)
		}
	}
}
