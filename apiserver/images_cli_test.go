package apiserver

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImagesWithDockerCLI drives the image endpoints with the real docker CLI, which
// is what their shapes are for: its table output, its exit codes and its messages.
// The CLI talks to the kiln test server only; no daemon is involved.
func TestImagesWithDockerCLI(t *testing.T) {
	t.Parallel()
	ts := newImageTestServer(t)
	docker := dockerCLI(t, "tcp://"+strings.TrimPrefix(ts.URL, "http://"), "")
	reg := newTestRegistry(t, "", "")
	authReg := newTestRegistry(t, "apicap", "apicappass")
	id := ts.put(t, apiImage(t, time.Now().Add(-time.Minute), nil), "cli-basic")
	short := id.Hex[:12]

	// saveRemoveLoad round-trips the image through docker save and docker load, with a
	// forced rmi between them.
	saveRemoveLoad := func() {
		file := filepath.Join(t.TempDir(), "save.tar")
		if out, errOut, code := docker("", "save", "-o", file, "cli-basic", authReg+"/cli/y"); code != 0 {
			t.Fatalf("docker save: %d %s %s", code, out, errOut)
		}
		if out, errOut, code := docker("", "rmi", "-f", short); code != 0 || !strings.Contains(out, "Deleted: "+id.String()) {
			t.Fatalf("docker rmi -f: %d %s %s", code, out, errOut)
		}
		out, errOut, code := docker("", "load", "-i", file)
		if code != 0 || out != "Loaded image: cli-basic:latest\nLoaded image: "+authReg+"/cli/y:latest\n" {
			t.Fatalf("docker load: %d %q %s", code, out, errOut)
		}
	}

	steps := []struct {
		run        func() // instead of args
		args       []string
		stdin      string
		code       int
		wantOut    string // substring of stdout
		wantErrOut string // substring of stderr
	}{
		{args: []string{"tag", "cli-basic", reg + "/cli/x:1"}},
		{args: []string{"tag", "cli-basic", authReg + "/cli/y"}},
		{args: []string{"images", "cli-basic"}, wantOut: "cli-basic    latest    " + short},
		{args: []string{"images", "-q", "cli-basic"}, wantOut: short + "\n"},
		{args: []string{"image", "inspect", "--format", "{{.Id}} {{.RepoTags}}", "cli-basic"}, wantOut: id.String() + " [" + strings.Join(sortedStrings([]string{authReg + "/cli/y:latest", reg + "/cli/x:1", "cli-basic:latest"}), " ") + "]"},
		{args: []string{"image", "inspect", "cli-nope"}, code: 1, wantOut: "[]", wantErrOut: "Error response from daemon: no such image: cli-nope: No such image: cli-nope:latest"},
		{args: []string{"push", reg + "/cli/x:1"}, wantOut: "1: digest: sha256:"},
		{args: []string{"images", "--digests", reg + "/cli/x"}, wantOut: "sha256:"},
		{args: []string{"push", authReg + "/cli/y"}, code: 1, wantErrOut: "no basic auth credentials"},
		{args: []string{"login", "-u", "apicap", "--password-stdin", authReg}, stdin: "wrong\n", code: 1, wantErrOut: "login attempt to http://" + authReg + "/v2/ failed with status: 401 Unauthorized"},
		{args: []string{"login", "-u", "apicap", "--password-stdin", authReg}, stdin: "apicappass\n", wantOut: "Login Succeeded"},
		{args: []string{"push", authReg + "/cli/y"}, wantOut: "latest: digest: sha256:"},
		{args: []string{"rmi", short}, code: 1, wantErrOut: "conflict: unable to delete " + short + " (must be forced)"},
		{args: []string{"rmi", reg + "/cli/x:1"}, wantOut: "Untagged: " + reg + "/cli/x:1\nUntagged: " + reg + "/cli/x@sha256:"},
		{run: saveRemoveLoad},
		{args: []string{"rmi", "cli-nope"}, code: 1, wantErrOut: "Error response from daemon: No such image: cli-nope:latest"},
		{args: []string{"image", "prune", "-f"}, wantOut: "Total reclaimed space: 0B"},
		{args: []string{"builder", "prune", "-f"}, wantOut: "Total reclaimed space: 0B"},
	}
	for _, s := range steps {
		if s.run != nil {
			s.run()
			continue
		}
		out, errOut, code := docker(s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.wantOut) || !strings.Contains(errOut, s.wantErrOut) {
			t.Errorf("docker %s: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)",
				strings.Join(s.args, " "), code, s.code, out, s.wantOut, errOut, s.wantErrOut)
		}
	}
}
