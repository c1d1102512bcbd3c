package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// kilnBuildDoor builds df with `kiln build --secret` (chroot, a state directory of
// its own, every output: --tar-path, --oci-layout-path, a push, the registry step
// cache) twice, the second time from the cache with debug JSON logs, and sweeps it
// all. It returns the tar for the caller's checks.
func kilnBuildDoor(t *testing.T, w *sweep, reg, df, secretFile, repo string) string {
	t.Helper()
	ctx := writeContext(t, map[string]string{"Dockerfile": df})
	state, out := t.TempDir(), t.TempDir()
	tag := uniqueTag()
	args := []string{"--context", "dir://" + ctx, "--dockerfile", filepath.Join(ctx, "Dockerfile"),
		"--destination", reg + "/" + repo + ":" + tag, "--state-dir", state,
		"--secret", "id=tok,src=" + secretFile, "--insecure", "--insecure-pull",
		"--cache=true", "--cache-repo", reg + "/" + repo + "-cache-" + tag}
	first, code := kilnBuild(t, nil, append(args, "--tar-path", filepath.Join(out, "img.tar"),
		"--oci-layout-path", filepath.Join(out, "oci"), "--verbosity=trace")...)
	if code != 0 {
		t.Fatalf("kiln build: exit %d\n%s", code, first)
	}
	w.bytes("kiln build output", []byte(first), 0)
	second, code := kilnBuild(t, nil, append(args, "--log-format=json", "--verbosity=debug",
		"--tar-path", filepath.Join(out, "img2.tar"))...)
	if code != 0 {
		t.Fatalf("kiln build (cached): exit %d\n%s", code, second)
	}
	w.bytes("kiln build output (cached, json)", []byte(second), 0)
	// A RUN that fails with the secret in its environment: the error and its logs.
	failing := writeContext(t, map[string]string{"Dockerfile": df + failingRun})
	third, code := kilnBuild(t, nil, "--context", "dir://"+failing, "--no-push", "--state-dir", state,
		"--secret", "id=tok,src="+secretFile, "--insecure-pull", "--verbosity=trace")
	if code != 7 {
		t.Errorf("kiln build of a failing RUN: exit %d, want 7\n%s", code, third)
	}
	w.bytes("kiln build output (failing RUN)", []byte(third), 0)
	w.path(t, state)
	w.path(t, out)
	w.repository(t, reg+"/"+repo, tag)
	// A repository of this build's own: the step cache does not key on secret values
	// (as BuildKit's), so an earlier run's cache would serve the RUNs without the secret.
	w.repository(t, reg+"/"+repo+"-cache-"+tag, "")
	return filepath.Join(out, "img.tar")
}

// serveDoors builds df through kiln serve: /build with the server's --secret (the
// classic CLI), buildx's docker driver (moby exporter, then docker save; -o local and
// tar), the remote driver (-o type=docker, type=oci, --load), buildctl (-o oci); every
// build but the first with --no-cache so each RUN really mounts the secret. It sweeps
// the outputs, the progress streams, the server's log and its whole state directory,
// and returns the -o type=local directory.
func serveDoors(t *testing.T, w *sweep, reg, df, secretFile string) string {
	t.Helper()
	cfg := testworld.Buildx(t)
	buildctl := testworld.Buildctl(t)
	bkSock := filepath.Join(t.TempDir(), "bk.sock")
	s := startServer(t, "--insecure-registry", reg, "--buildkit-addr", "unix://"+bkSock, "--secret", "id=tok,src="+secretFile)
	ctx := writeContext(t, map[string]string{"Dockerfile": df})
	out := t.TempDir()
	tag := uniqueTag()
	secretFlag := "id=tok,src=" + secretFile
	must := func(door, got string, code int) {
		t.Helper()
		w.bytes(door, []byte(got), 0)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", door, code, got)
		}
	}

	classic := "kiln-e2e/sweep-classic:" + tag
	got, code := s.docker(t, []string{"DOCKER_BUILDKIT=0", "DOCKER_CONFIG=" + cfg}, "", "build", "-t", classic, ctx)
	must("/build (classic CLI)", got, code)
	s.mustDocker(t, "save", "-o", filepath.Join(out, "classic.tar"), classic)
	w.bytes("docker history", []byte(s.mustDocker(t, "history", "--no-trunc", classic)), 0)
	w.bytes("docker image inspect", []byte(s.mustDocker(t, "image", "inspect", classic)), 0)

	moby := "kiln-e2e/sweep-buildx:" + tag
	for i, extra := range [][]string{
		{"-t", moby, "--metadata-file", filepath.Join(out, "meta.json")}, // the step cache's hits
		{"--no-cache", "-t", moby},
		{"--no-cache", "-o", "type=local,dest=" + filepath.Join(out, "local")},
		{"--no-cache", "-o", "type=tar,dest=" + filepath.Join(out, "fs.tar")},
	} {
		args := append([]string{"build", "--progress=rawjson", "--secret", secretFlag}, extra...)
		got, code := s.buildx(t, cfg, "", append(args, ctx)...)
		must("buildx docker driver "+strings.Join(extra, " "), got, code)
		if i == 1 && strings.Contains(df, "file-bytes") && !strings.Contains(string(mustDecodeRaw(got)), "file-bytes 34") {
			t.Errorf("buildx --progress=rawjson shows no RUN output:\n%s", got)
		}
	}
	s.mustDocker(t, "save", "-o", filepath.Join(out, "buildx.tar"), moby)

	builder := "kiln-sweep-" + tag
	s.mustBuildx(t, cfg, "buildx", "create", "--name", builder, "--driver", "remote", "unix://"+bkSock)
	defer s.buildx(t, cfg, "", "buildx", "rm", builder)
	loaded := "kiln-e2e/sweep-load:" + tag
	for _, extra := range [][]string{
		{"-o", "type=docker,name=x,dest=" + filepath.Join(out, "remote-docker.tar")},
		{"-o", "type=oci,dest=" + filepath.Join(out, "remote-oci.tar")},
		{"--load", "-t", loaded},
	} {
		args := append([]string{"buildx", "build", "--builder", builder, "--no-cache", "--progress=plain", "--secret", secretFlag}, extra...)
		got, code := s.buildx(t, cfg, "", append(args, ctx)...)
		must("buildx remote driver "+strings.Join(extra, " "), got, code)
	}
	s.mustDocker(t, "save", "-o", filepath.Join(out, "loaded.tar"), loaded)

	cmd := exec.Command(buildctl, "--addr", "unix://"+bkSock, "build", "--frontend", "dockerfile.v0",
		"--local", "context="+ctx, "--local", "dockerfile="+ctx, "--no-cache", "--progress=rawjson",
		"--secret", secretFlag, "--output", "type=oci,dest="+filepath.Join(out, "buildctl-oci.tar"),
		"--metadata-file", filepath.Join(out, "buildctl-meta.json"))
	bout, err := cmd.CombinedOutput()
	code = 0
	if err != nil {
		code = 1
	}
	must("buildctl", string(bout), code)

	failing := writeContext(t, map[string]string{"Dockerfile": df + failingRun})
	got, code = s.buildx(t, cfg, "", "build", "--progress=rawjson", "--secret", secretFlag, failing)
	w.bytes("buildx failing RUN", []byte(got), 0)
	if code == 0 || !strings.Contains(got, "exit code: 7") {
		t.Errorf("buildx of a failing RUN: exit %d\n%s", code, got)
	}
	got, code = s.docker(t, []string{"DOCKER_BUILDKIT=0", "DOCKER_CONFIG=" + cfg}, "", "build", failing)
	w.bytes("/build failing RUN", []byte(got), 0)
	if code == 0 || !strings.Contains(got, "returned a non-zero code: 7") {
		t.Errorf("/build of a failing RUN: exit %d\n%s", code, got)
	}

	w.path(t, out)
	w.path(t, s.state)
	w.path(t, s.log.Name())
	return filepath.Join(out, "local")
}

// failingRun ends a Dockerfile with a RUN that fails holding the secret (a file and
// env=), so its error path is swept too.
const failingRun = "RUN --mount=type=secret,id=tok,env=TOK,required=true --mount=type=secret,id=tok,target=/t,required=true test -z \"$TOK\" || exit 7\n"

// mustDecodeRaw turns buildx's rawjson progress into its RUN output: the base64 "data"
// of each log entry, decoded, so a test can see what the RUN printed.
func mustDecodeRaw(raw string) []byte {
	var all []byte
	for _, part := range strings.Split(raw, `"data":"`) {
		end := strings.IndexByte(part, '"')
		if end < 0 {
			continue
		}
		if b, err := decodeB64(part[:end]); err == nil {
			all = append(all, b...)
		}
	}
	return all
}

// TestSecretsNeverLeak: a secret mounted every way (file, env=, a target, with a cache
// mount, required) through every door (kiln build; kiln serve's /build with the
// server's --secret; buildx's docker and remote drivers; buildctl) is nowhere in what
// the builds leave: images and archives (every layer, gzipped and not), configs and
// history, the registry and its step cache, the state directories (store, step cache,
// mount caches), logs and progress streams. The negative control builds a Dockerfile
// that prints the secret and copies it into the image: the same sweep finds it, so the
// sweep can fail.
func TestSecretsNeverLeak(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)

	t.Run("kiln build", func(t *testing.T) {
		value, file := secretValue(t)
		w := newSweep(value)
		tarPath := kilnBuildDoor(t, w, reg, secretDockerfile(reg), file, "kiln-e2e/sweep")
		if len(w.hits) > 0 {
			t.Errorf("the secret leaked into:\n%s", strings.Join(w.hits, "\n"))
		}
		t.Logf("kiln build: %d files and streams looked at, %d archives and gzip streams opened", w.scanned, w.opened)
		if w.opened < 10 {
			t.Errorf("the sweep opened %d archives and gzip streams: it saw too little", w.opened)
		}
		wantSums(t, "kiln build", value, imageFiles(t, tarPath, "tok.sum", "env.sum", "cache.sum"))
	})

	t.Run("kiln serve", func(t *testing.T) {
		value, file := secretValue(t)
		w := newSweep(value)
		local := serveDoors(t, w, reg, secretDockerfile(reg), file)
		if len(w.hits) > 0 {
			t.Errorf("the secret leaked into:\n%s", strings.Join(w.hits, "\n"))
		}
		t.Logf("kiln serve: %d files and streams looked at, %d archives and gzip streams opened", w.scanned, w.opened)
		if w.opened < 20 {
			t.Errorf("the sweep opened %d archives and gzip streams: it saw too little", w.opened)
		}
		files := map[string]string{}
		for _, f := range []string{"tok.sum", "env.sum", "cache.sum"} {
			b, _ := os.ReadFile(filepath.Join(local, f))
			files[f] = string(b)
		}
		wantSums(t, "buildx -o type=local", value, files)
	})

	t.Run("negative control: a leaking Dockerfile is caught", func(t *testing.T) {
		value, file := secretValue(t)
		w := newSweep(value)
		kilnBuildDoor(t, w, reg, leakyDockerfile(reg), file, "kiln-e2e/sweep-leak")
		serveDoors(t, w, reg, leakyDockerfile(reg), file)
		for _, want := range []string{"kiln build output", "img.tar!", "/oci/blobs/sha256/", "sweep-leak:", "-cache-",
			"/build (classic CLI)", "classic.tar!", "buildx docker driver --no-cache -t", "buildx.tar!", "local/leaked",
			"remote-docker.tar!", "remote-oci.tar!", "loaded.tar!", "buildctl-oci.tar!", "buildctl"} {
			found := false
			for _, h := range w.hits {
				if strings.Contains(h, want) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("the sweep did not find the printed and copied secret in %q; hits:\n%s", want, strings.Join(w.hits, "\n"))
			}
		}
	})
}
