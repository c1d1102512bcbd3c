package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// classicBuild runs DOCKER_BUILDKIT=0 docker build on a context holding df against
// host, with extra flags, and returns its combined output.
func classicBuild(t *testing.T, cli, host, df string, flags ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append(append([]string{"-H", host, "build"}, flags...), dir)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+t.TempDir(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestServeResourceLimitsWithTheDockerCLI: docker build --memory and kiln serve's
// --build-pids and --build-timeout stop a memory hog, a fork bomb and a build that runs
// too long, each with a message naming the limit, and the server builds on.
func TestServeResourceLimitsWithTheDockerCLI(t *testing.T) {
	cli := dockerCLI(t)
	needRoot(t)
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	if _, err := isolation.OpenCgroups(); err != nil {
		t.Skipf("no writable cgroup: %v", err)
	}
	from := "FROM " + reg + "/busybox:1.35\n"
	sock := filepath.Join(t.TempDir(), "kiln.sock")
	d, _, _ := startTestDaemon(t, "-H", "unix://"+sock, "--build-pids", "64")
	// A server of its own for the timeout, short enough for a test.
	dt, _, _ := startTestDaemon(t, "-H", "unix://"+filepath.Join(t.TempDir(), "kiln.sock"), "--build-timeout", "3s")
	for _, tc := range []struct {
		name  string
		host  string
		run   string
		flags []string
		want  string
	}{
		{"memory hog under docker build --memory", d.hosts[0], "head -c 500m /dev/zero | tail", []string{"--memory", "64m"},
			"RUN was killed: the build's memory limit (64MiB) was reached"},
		{"fork bomb under --build-pids", d.hosts[0], "bomb(){ bomb|bomb& }; bomb; sleep 2", nil,
			"RUN reached the build's process limit (64 processes)"},
		{"too long for --build-timeout", dt.hosts[0], "sleep 60", nil,
			"it ran longer than the server's build timeout (--build-timeout 3s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := classicBuild(t, cli, tc.host, from+"RUN "+tc.run+"\n", tc.flags...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("docker build: %v, want a failure saying %q:\n%s", err, tc.want, out)
			}
			t.Logf("docker build says:\n%s", out)
			// The server is unaffected: the next build succeeds.
			if out, err := classicBuild(t, cli, tc.host, from+"RUN echo fine\n"); err != nil {
				t.Errorf("the build after: %v\n%s", err, out)
			}
		})
	}
}

// TestLimitFlags: kiln serve's caps reach the workspace, and bad values are refused
// naming the flag.
func TestLimitFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		mode    isolation.Mode
		want    builder.Workspace
		wantErr string
	}{
		{args: nil, mode: isolation.Chroot},
		{args: []string{"--build-memory=2GiB", "--build-pids=100", "--build-timeout=30m"}, mode: isolation.Chroot,
			want: builder.Workspace{MaxMemory: 2 << 30, MaxPids: 100, Timeout: 30 * time.Minute}},
		{args: []string{"--build-memory=0"}, mode: isolation.Chroot},
		{args: []string{"--build-memory=lots"}, mode: isolation.Chroot, wantErr: "--build-memory"},
		{args: []string{"--build-memory=1m"}, mode: isolation.Chroot, wantErr: "--build-memory 1m: must be at least 6MiB"},
		{args: []string{"--build-pids=-1"}, mode: isolation.Chroot, wantErr: "--build-pids -1: must not be negative"},
		{args: []string{"--build-timeout=-1s"}, mode: isolation.Chroot, wantErr: "--build-timeout -1s: must not be negative"},
		{args: []string{"--build-pids=10"}, mode: isolation.InPlace, wantErr: "--build-memory and --build-pids need chroot isolation"},
		{args: []string{"--build-timeout=1h"}, mode: isolation.InPlace, want: builder.Workspace{Timeout: time.Hour}},
	} {
		var f limitFlags
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		addLimitFlags(fs, &f)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		ws := builder.Workspace{Isolation: tc.mode}
		err := f.plan(&ws)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || ws.MaxMemory != tc.want.MaxMemory || ws.MaxPids != tc.want.MaxPids || ws.Timeout != tc.want.Timeout {
			t.Errorf("%v: memory %d pids %d timeout %s, err %v; want %d %d %s", tc.args, ws.MaxMemory, ws.MaxPids, ws.Timeout, err,
				tc.want.MaxMemory, tc.want.MaxPids, tc.want.Timeout)
		}
	}
}

// TestBuildResourceCaps: kiln build takes the same caps as kiln serve; a memory hog
// fails the build with the limit named, and a build too long for --build-timeout ends.
func TestBuildResourceCaps(t *testing.T) {
	needRoot(t)
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	if _, err := isolation.OpenCgroups(); err != nil {
		t.Skipf("no writable cgroup: %v", err)
	}
	for _, tc := range []struct {
		name string
		run  string
		args []string
		want string
	}{
		{"memory", "head -c 500m /dev/zero | tail", []string{"--build-memory=64MiB", "--build-pids=64"},
			"RUN was killed: the build's memory limit (64MiB) was reached"},
		{"timeout", "sleep 60", []string{"--build-timeout=2s"}, "(--build-timeout 2s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir := t.TempDir()
			df := "FROM " + reg + "/busybox:1.35\nRUN " + tc.run + "\n"
			if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			start := time.Now()
			code := run(append([]string{"build", "-c", ctxDir, "--isolation=chroot", "--no-push"}, tc.args...), &stdout, &stderr, e2eHost(t))
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit code %d, want a failure saying %q; stderr:\n%s", code, tc.want, stderr.String())
			}
			if d := time.Since(start); d > time.Minute {
				t.Errorf("the build took %s", d)
			}
		})
	}
}
