package apiserver

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBuildWithDockerCLI drives POST /build with the real docker CLI (the legacy
// builder: DOCKER_BUILDKIT=0), which is what the byte shapes above are for: its exit
// codes, its -q output, its --iidfile, and `-f -`, whose context is a tar without
// end-of-archive blocks and a .dockerignore naming the Dockerfile.
func TestBuildWithDockerCLI(t *testing.T) {
	t.Parallel()
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI on PATH")
	}
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	host := "tcp://" + strings.TrimPrefix(ts.URL, "http://")

	ctxDir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM "+w.busybox+"\nCOPY . /ctx/\nRUN find /ctx | sort\n")
	write("fail.Dockerfile", "FROM "+w.busybox+"\nRUN echo failing; exit 3\n")
	write("a.txt", "a\n")

	docker := func(stdin string, args ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(cli, args...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+t.TempDir())
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}

	t.Run("build and tag", func(t *testing.T) {
		iid := filepath.Join(t.TempDir(), "iid")
		out, errOut, code := docker("", "build", "-t", "cli-app", "--iidfile", iid, ".")
		if code != 0 || !strings.Contains(out, "Successfully tagged cli-app:latest\n") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		id, _ := os.ReadFile(iid)
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).Match(id) || !strings.Contains(out, " ---> "+string(id[7:19])+"\nSuccessfully built "+string(id[7:19])+"\n") {
			t.Errorf("iidfile %q does not match the output\n%s", id, out)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		out, errOut, code := docker("", "build", "-q", ".")
		if code != 0 || !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(out) {
			t.Fatalf("exit %d stdout %q\n%s", code, out, errOut)
		}
	})
	t.Run("a failing RUN's exit code", func(t *testing.T) {
		_, errOut, code := docker("", "build", "-f", "fail.Dockerfile", ".")
		if code != 3 || !strings.Contains(errOut, "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3") {
			t.Fatalf("exit %d, want 3\n%s", code, errOut)
		}
	})
	t.Run("heredocs, BuildKit's syntax that dockerd's classic builder refuses", func(t *testing.T) {
		df := "FROM " + w.busybox + "\nCOPY <<EOF /h\nfrom-copy\nEOF\nRUN <<EOF\ncat /h\necho from-run\nEOF\n"
		out, errOut, code := docker(df, "build", "-f", "-", ".")
		if code != 0 || !strings.Contains(out, "from-copy\nfrom-run\n") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("Dockerfile from stdin", func(t *testing.T) {
		out, errOut, code := docker("FROM "+w.busybox+"\nCOPY . /ctx/\nRUN find /ctx | sort\n", "build", "-f", "-", ".")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		// The CLI's .dockerfile.<hex> and .dockerignore are hidden from COPY.
		if strings.Contains(out, "/ctx/.docker") || !strings.Contains(out, "/ctx/a.txt\n") {
			t.Errorf("COPY . saw the wrong files:\n%s", out)
		}
	})
	t.Run("a parse error", func(t *testing.T) {
		_, errOut, code := docker("FROM "+w.busybox+"\nRUNN echo typo\n", "build", "-f", "-", ".")
		if code != 1 || !strings.Contains(errOut, "Error response from daemon: dockerfile parse error line 2: unknown instruction: RUNN") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
	})
}
