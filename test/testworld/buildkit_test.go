package testworld

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildkitToolLookup drives Buildx and Buildctl through the environment (so it is not
// parallel): the variable wins, then the tools cache, and a missing tool skips or, when
// the world is required, fails.
func TestBuildkitToolLookup(t *testing.T) {
	if testing.Short() {
		t.Skip("the helpers skip under -short")
	}
	exe := func(path string, mode os.FileMode) string {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	base := t.TempDir()
	goodCfg := filepath.Dir(filepath.Dir(exe(filepath.Join(base, "cfg", "cli-plugins", "docker-buildx"), 0o755)))
	badCfg := filepath.Dir(filepath.Dir(exe(filepath.Join(base, "bad", "cli-plugins", "docker-buildx"), 0o644)))
	goodCtl := exe(filepath.Join(base, "bin", "buildctl"), 0o755)
	cache := filepath.Join(base, "cache")
	cachedCtl := exe(filepath.Join(cache, "buildkit-v0.34.2", "buildctl"), 0o755)
	exe(filepath.Join(cache, "buildkit-v0.9.0", "buildctl"), 0o644) // not executable: ignored
	cachedCfg := filepath.Dir(filepath.Dir(exe(filepath.Join(cache, "docker-config", "cli-plugins", "docker-buildx"), 0o755)))
	empty := filepath.Join(base, "empty")

	tests := []struct {
		name, tool, env, cache, required string
		want, wantVerdict                string
	}{
		{"buildx from env", "buildx", goodCfg, empty, "1", goodCfg, "ok"},
		{"buildx plugin not executable", "buildx", badCfg, empty, "", "", "skip"},
		{"buildx plugin not executable required", "buildx", badCfg, empty, "1", "", "fail"},
		{"buildx from cache", "buildx", "", cache, "1", cachedCfg, "ok"},
		{"buildx absent", "buildx", "", empty, "", "", "skip"},
		{"buildx absent required", "buildx", "", empty, "1", "", "fail"},
		{"buildctl from env", "buildctl", goodCtl, empty, "1", goodCtl, "ok"},
		{"buildctl env names nothing", "buildctl", filepath.Join(base, "nope"), cache, "1", "", "fail"},
		{"buildctl from cache", "buildctl", "", cache, "1", cachedCtl, "ok"},
		{"buildctl absent", "buildctl", "", empty, "", "", "skip"},
		{"buildctl absent required", "buildctl", "", empty, "1", "", "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBuildxConfig, "")
			t.Setenv(EnvBuildctl, "")
			if tt.tool == "buildx" {
				t.Setenv(EnvBuildxConfig, tt.env)
			} else {
				t.Setenv(EnvBuildctl, tt.env)
			}
			t.Setenv(EnvToolsCache, tt.cache)
			t.Setenv(EnvRequired, tt.required)
			t.Setenv("PATH", empty) // no buildctl on PATH either
			r := &recorder{TB: t}
			var got string
			if tt.tool == "buildx" {
				got = Buildx(r)
			} else {
				got = Buildctl(r)
			}
			if tt.tool == "buildx" && got != "" {
				got = pluginDir(t, got, tt.want)
			}
			if v := r.verdict(); v != tt.wantVerdict || got != tt.want {
				t.Errorf("%s() = %q, %s (%s); want %q, %s", tt.tool, got, v, r.msg, tt.want, tt.wantVerdict)
			}
			if tt.wantVerdict != "ok" && !strings.Contains(r.msg, "buildkit-tools.sh install") {
				t.Errorf("message %q does not say how to install the tools", r.msg)
			}
		})
	}
}

// pluginDir checks that the DOCKER_CONFIG dir Buildx returned is not the shared one and
// that its plugin is the one in want; it returns want then, else got.
func pluginDir(t *testing.T, got, want string) string {
	t.Helper()
	if got == want {
		t.Errorf("Buildx() returned the shared %s, not a directory of the test's own", got)
		return got
	}
	a, errA := os.Stat(filepath.Join(got, "cli-plugins", "docker-buildx"))
	b, errB := os.Stat(filepath.Join(want, "cli-plugins", "docker-buildx"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("Buildx() = %s: its plugin is not %s's (%v, %v)", got, want, errA, errB)
		return got
	}
	return want
}

// TestBuildxVersion runs the installed plugin through the docker CLI with the test-only
// DOCKER_CONFIG: the version scripts/buildkit-tools.sh pins must be the one found.
func TestBuildxVersion(t *testing.T) {
	cfg := Buildx(t)
	docker, err := exec.LookPath("docker")
	if err != nil {
		unavailable(t, required(), "testworld: no docker CLI on PATH: %v; %s", err, worldHint)
		return
	}
	cmd := exec.Command(docker, "buildx", "version")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker buildx version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " v0.36.") {
		t.Errorf("docker buildx version = %q; want buildx v0.36.x", out)
	}
}

// TestStartBuildkitd builds a Dockerfile with a RUN (so runc runs) from the test registry
// with the reference daemon, checks the docker-format tarball it exports, and checks that
// the daemon is gone and its socket directory removed once the (sub)test has ended.
func TestStartBuildkitd(t *testing.T) {
	busybox := Busybox(t)
	ctl := Buildctl(t)
	var addr string
	t.Run("build", func(t *testing.T) {
		addr = StartBuildkitd(t)
		dir := t.TempDir()
		df := "FROM " + busybox + "\nRUN echo built-by-buildkitd > /proof\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out.tar")
		cmd := exec.Command(ctl, "--addr", addr, "build", "--progress=plain",
			"--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
			"--output", "type=docker,name=x,dest="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("buildctl build: %v\n%s", err, b)
		}
		if err := tarHas(out, "manifest.json"); err != nil {
			t.Errorf("buildkitd's docker output: %v", err)
		}
	})
	if addr == "" {
		return
	}
	if pids := ProcessesWith(addr); len(pids) != 0 {
		t.Errorf("buildkitd (pids %v) still runs after its test ended", pids)
	}
	sock := strings.TrimPrefix(addr, "unix://")
	if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir %s left behind (stat: %v)", filepath.Dir(sock), err)
	}
}

// tarHas reports an error unless path is a tar archive holding a regular file named name.
func tarHas(path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return errors.New("no " + name + " in the archive")
		}
		if err != nil {
			return err
		}
		if h.Name == name && h.Typeflag == tar.TypeReg {
			return nil
		}
	}
}

// TestBuildkitToolsScript runs scripts/buildkit-tools.sh against a cache of its own: an
// empty cache makes `env` print nothing, and a cache whose stamps match the pinned
// versions makes `install` build nothing (only link the plugin) and `env` print the three
// variables.
func TestBuildkitToolsScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a script")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("no runc: install would apt-get it")
	}
	script, err := filepath.Abs("../../scripts/buildkit-tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	pin := func(name string) string {
		for _, line := range strings.Split(string(src), "\n") {
			if v, ok := strings.CutPrefix(line, name+"="); ok {
				return strings.Fields(v)[0]
			}
		}
		t.Fatalf("no %s= line in %s", name, script)
		return ""
	}
	buildx, buildkit, recipe := pin("BUILDX_VERSION"), pin("BUILDKIT_VERSION"), pin("RECIPE")
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "go")); err != nil {
			keep = append(keep, d)
		}
	}
	noGo := strings.Join(keep, string(filepath.ListSeparator))
	run := func(cache, arg string) (stdout, stderr string) {
		t.Helper()
		var out, errb strings.Builder
		cmd := exec.Command("bash", script, arg)
		// no go on PATH: a stamp mismatch fails at once instead of building for minutes
		cmd.Env = append(os.Environ(), "KILN_TOOLS_CACHE="+cache, "KILN_WORLD_NO_APT=1", "PATH="+noGo)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("buildkit-tools.sh %s: %v\n%s", arg, err, errb.String())
		}
		return out.String(), errb.String()
	}

	if out, _ := run(t.TempDir(), "env"); out != "" {
		t.Errorf("env with an empty cache printed %q; want nothing", out)
	}

	cache := t.TempDir()
	fake := func(dir, stamp string, bins ...string) string {
		d := filepath.Join(cache, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range bins {
			if err := os.WriteFile(filepath.Join(d, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, ".stamp"), []byte(stamp+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	bxDir := fake("buildx-"+buildx, "buildx "+buildx+" recipe "+recipe, "docker-buildx")
	bkDir := fake("buildkit-"+buildkit, "buildkit "+buildkit+" recipe "+recipe, "buildctl", "buildkitd")
	_, log := run(cache, "install")
	if strings.Contains(log, "building") {
		t.Errorf("install with a stamped cache built something:\n%s", log)
	}
	if dst, err := os.Readlink(filepath.Join(cache, "docker-config", "cli-plugins", "docker-buildx")); err != nil ||
		dst != filepath.Join(bxDir, "docker-buildx") {
		t.Errorf("plugin link = %q, %v; want %s", dst, err, filepath.Join(bxDir, "docker-buildx"))
	}
	out, _ := run(cache, "env")
	want := "export " + EnvBuildxConfig + "=" + filepath.Join(cache, "docker-config") + "\n" +
		"export " + EnvBuildctl + "=" + filepath.Join(bkDir, "buildctl") + "\n" +
		"export " + EnvBuildkitd + "=" + filepath.Join(bkDir, "buildkitd") + "\n"
	if out != want {
		t.Errorf("env printed\n%s\nwant\n%s", out, want)
	}
}
