package apiserver

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestDockerCommandsWithDockerCLI runs the docker commands people try first against
// a kiln server with the real docker CLI: each prints what a daemon with no
// containers prints, or one sentence saying kiln runs none, never "page not found".
func TestDockerCommandsWithDockerCLI(t *testing.T) {
	t.Parallel()
	ts := newImageTestServer(t)
	run := dockerCLI(t, "tcp://"+strings.TrimPrefix(ts.URL, "http://"), "")
	reg := newTestRegistry(t, "", "")
	img, err := random.Image(300, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, img, reg+"/cli/app:1")
	id, _ := img.ConfigName()
	short := id.Hex[:12]
	docker := func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := run("", args...)
		return out + errOut, code
	}
	noContainers := "kiln builds images and runs no containers"
	steps := []struct {
		args []string
		code int
		want []string // regular expressions the output must match
	}{
		{[]string{"pull", reg + "/cli/app:1"}, 0, []string{`(?m)^1: Pulling from cli/app$`, `Pull complete`, `(?m)^Digest: sha256:[0-9a-f]{64}$`, `Status: Downloaded newer image for ` + regexp.QuoteMeta(reg+"/cli/app:1")}},
		{[]string{"pull", reg + "/cli/app:1"}, 0, []string{`Status: Image is up to date for `}},
		{[]string{"pull", reg + "/cli/app:nope"}, 1, []string{`Error response from daemon: manifest for .*/cli/app:nope not found`}},
		{[]string{"pull", "-a", reg + "/cli/app"}, 1, []string{`docker pull --all-tags is not supported`}},
		{[]string{"images"}, 0, []string{regexp.QuoteMeta(reg+"/cli/app") + ` +1 +` + short}},
		{[]string{"history", reg + "/cli/app:1"}, 0, []string{`(?m)^IMAGE +CREATED +CREATED BY +SIZE +COMMENT$`, `(?m)^` + short + ` `}},
		{[]string{"system", "df"}, 0, []string{`(?m)^Images +1 +0 `, `(?m)^Containers +0 +0 +0B +0B$`, `(?m)^Local Volumes +0 +0 +0B +0B$`, `(?m)^Build Cache +0 +0 +0B +0B$`}},
		{[]string{"system", "df", "-v"}, 0, []string{`Images space usage:`, short, `Build cache usage: 0B`}},
		{[]string{"ps"}, 0, []string{`^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES\n$`}},
		{[]string{"ps", "-a"}, 0, []string{`^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES\n$`}},
		{[]string{"run", "--rm", reg + "/cli/app:1", "true"}, 125, []string{`Error response from daemon: ` + noContainers}},
		{[]string{"create", reg + "/cli/app:1"}, 1, []string{`Error response from daemon: ` + noContainers}},
		{[]string{"exec", "c1", "true"}, 1, []string{`No such container: c1 \(` + noContainers}},
		// Generic inspect asks for a container first and must get a 404 to go on.
		{[]string{"inspect", "--format", "{{.Id}}", reg + "/cli/app:1"}, 0, []string{`^` + id.String() + `\n$`}},
		{[]string{"logs", "c1"}, 1, []string{`No such container: c1`}},
		{[]string{"volume", "ls"}, 0, []string{`^DRIVER +VOLUME NAME\n$`}},
		{[]string{"network", "ls"}, 0, []string{`^NETWORK ID +NAME +DRIVER +SCOPE\n$`}},
		{[]string{"system", "prune", "-f"}, 0, []string{`Total reclaimed space: 0B`}},
		{[]string{"info"}, 0, []string{`Containers: 0`, `Images: 1`, `kiln is a build server: it runs no containers`}},
	}
	for _, s := range steps {
		out, code := docker(s.args...)
		if code != s.code || strings.Contains(out, "page not found") {
			t.Errorf("docker %s: exit %d (want %d)\n%s", strings.Join(s.args, " "), code, s.code, out)
			continue
		}
		for _, re := range s.want {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("docker %s: output does not match %q:\n%s", strings.Join(s.args, " "), re, out)
			}
		}
	}
}
