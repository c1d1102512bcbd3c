package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// buildx runs the docker CLI with the buildx plugin (its own DOCKER_CONFIG, never the
// machine's) against the server, as `docker build` runs on Docker 23 and later.
func (s *server) buildx(t *testing.T, config, stdin string, args ...string) (string, int) {
	t.Helper()
	return s.docker(t, []string{"DOCKER_CONFIG=" + config, "BUILDX_NO_DEFAULT_ATTESTATIONS="}, stdin, args...)
}

func (s *server) mustBuildx(t *testing.T, config string, args ...string) string {
	t.Helper()
	out, code := s.buildx(t, config, "", args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// TestBuildxDockerDriver is `docker build` as every current Docker runs it: buildx's
// docker driver against kiln serve's Engine API (/grpc and /session upgrades).
func TestBuildxDockerDriver(t *testing.T) {
	reg := testworld.Registry(t)
	dockerCLI := testworld.Docker(t)
	cfg := testworld.Buildx(t)
	s := startServer(t, "--insecure-registry", reg)
	tag := uniqueTag()
	name := "kiln-e2e/bx-" + tag
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + reg + `/busybox:1.35 AS base
ARG V=unset
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
		"gone/old.txt":   "removed before the last build\n",
	})
	iid := filepath.Join(t.TempDir(), "iid")
	meta := filepath.Join(t.TempDir(), "meta.json")

	out := s.mustBuildx(t, cfg, "build", "--progress=plain", "-t", name+":1", "-t", name+":2", "--build-arg", "V=7",
		"--label", "cli=yes", "--target", "base", "--iidfile", iid, "--metadata-file", meta, ctx)
	for _, want := range []string{"[internal] load build definition from Dockerfile", "[base 1/3] FROM " + reg + "/busybox:1.35",
		"[base 3/3] RUN echo \"v=$V\" > /v", "exporting to image"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker build output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "stage other") || strings.Contains(out, "[other") {
		t.Errorf("--target base built the other stage:\n%s", out)
	}
	id, _ := os.ReadFile(iid)
	inspect := s.mustDocker(t, "image", "inspect", "-f", "{{.Id}} {{index .Config.Labels \"cli\"}}", name+":2")
	if want := string(id) + " yes"; strings.TrimSpace(inspect) != want {
		t.Errorf("inspect = %q, want %q (iidfile + label)", inspect, want)
	}
	if m, _ := os.ReadFile(meta); !strings.Contains(string(m), `"containerimage.config.digest": "`+string(id)+`"`) || !strings.Contains(string(m), name+":1") {
		t.Errorf("metadata file:\n%s", m)
	}

	// A rebuild comes from the step cache: every step CACHED.
	out = s.mustBuildx(t, cfg, "build", "--progress=plain", "-t", name+":1", "--build-arg", "V=7", "--label", "cli=yes", "--target", "base", ctx)
	if n := strings.Count(out, "CACHED"); n != 2 {
		t.Errorf("rebuild: %d CACHED steps, want 2 (COPY, RUN):\n%s", n, out)
	}

	// -f names another Dockerfile; -f - reads it from stdin.
	out = s.mustBuildx(t, cfg, "build", "--progress=plain", "-f", filepath.Join(ctx, "sub", "Dockerfile"), ctx)
	if !strings.Contains(out, "[2/2] COPY kept.txt /sub-kept") {
		t.Errorf("-f sub/Dockerfile:\n%s", out)
	}
	if out, code := s.buildx(t, cfg, "FROM "+reg+"/busybox:1.35\nRUN echo from-stdin\n", "build", "--progress=plain", "-f", "-", ctx); code != 0 || !strings.Contains(out, "from-stdin") {
		t.Errorf("docker build -f -: exit %d\n%s", code, out)
	}

	// The context is what .dockerignore leaves, and what the client's directory holds
	// now: a file changed, a directory removed and one added since the builds above
	// (sent incrementally, into the context kiln kept). The image runs in the real
	// dockerd.
	if err := os.WriteFile(filepath.Join(ctx, "kept.txt"), []byte("kept, changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(ctx, "kept.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(ctx, "gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ctx, "added"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "added", "new.txt"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pushed := reg + "/kiln-e2e/bx-pushed:" + tag
	s.mustBuildx(t, cfg, "build", "--progress=plain", "--push", "-t", pushed, "--target", "base", "--build-arg", "V=9", ctx)
	defer removeImage(t, dockerCLI, pushed)
	got := run(t, dockerCLI, "run", "--rm", pushed, "sh", "-c", "cat /v; ls /ctx; cat /ctx/kept.txt /ctx/added/new.txt")
	if !strings.Contains(got, "v=9") || !strings.Contains(got, "kept, changed") || !strings.Contains(got, "new\n") ||
		strings.Contains(got, "secret.txt") || strings.Contains(got, "gone") {
		t.Errorf("the pushed image ran with:\n%s", got)
	}
}

// TestBuildxFailures: a failing RUN and a Dockerfile error end the CLI non-zero with
// the build's message.
func TestBuildxFailures(t *testing.T) {
	reg := testworld.Registry(t)
	cfg := testworld.Buildx(t)
	s := startServer(t, "--insecure-registry", reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN exit 3\n"})
	out, code := s.buildx(t, cfg, "", "build", "--progress=plain", ctx)
	if code == 0 || !strings.Contains(out, `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`) || !strings.Contains(out, ">>> RUN exit 3") {
		t.Errorf("failing RUN: exit %d\n%s", code, out)
	}
	bad := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN true\nNOSUCH thing\n"})
	out, code = s.buildx(t, cfg, "", "build", "--progress=plain", bad)
	if code == 0 || !strings.Contains(out, "dockerfile parse error on line 3: unknown instruction: NOSUCH") || !strings.Contains(out, ">>> NOSUCH thing") {
		t.Errorf("unknown instruction: exit %d\n%s", code, out)
	}
}

// TestBuildxCancel: Ctrl-C in the client stops the RUN, and the next build runs.
func TestBuildxCancel(t *testing.T) {
	reg := testworld.Registry(t)
	cfg := testworld.Buildx(t)
	s := startServer(t, "--insecure-registry", reg)
	marker := strconv.Itoa(50000 + int(time.Now().UnixNano()%9999))
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN sleep " + marker + "\n"})
	cmd := exec.Command("docker", "-H", s.host, "build", "--progress=plain", ctx)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !sleeping(marker) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("the RUN never started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	deadline = time.Now().Add(20 * time.Second)
	for sleeping(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the RUN still runs 20s after the client was interrupted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo next\n"})
	s.mustBuildx(t, cfg, "build", "--progress=plain", ok)
}

// TestBuildxRemoteDriver: `docker buildx create --driver remote` at kiln serve
// --buildkit-addr, and buildctl at the same address.
func TestBuildxRemoteDriver(t *testing.T) {
	reg := testworld.Registry(t)
	cfg := testworld.Buildx(t)
	buildctl := testworld.Buildctl(t)
	bkSock := filepath.Join(t.TempDir(), "bk.sock")
	s := startServer(t, "--insecure-registry", reg, "--buildkit-addr", "unix://"+bkSock)
	tag := uniqueTag()
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo remote > /r\n"})
	builder := "kiln-remote-" + tag
	s.mustBuildx(t, cfg, "buildx", "create", "--name", builder, "--driver", "remote", "unix://"+bkSock)
	defer s.buildx(t, cfg, "", "buildx", "rm", builder)
	ref := reg + "/kiln-e2e/remote:" + tag
	out := s.mustBuildx(t, cfg, "buildx", "build", "--builder", builder, "--progress=plain", "--push", "-t", ref, ctx)
	if !strings.Contains(out, "[2/2] RUN echo remote > /r") {
		t.Errorf("remote driver build:\n%s", out)
	}
	if got := run(t, "curl", "-sf", "http://"+reg+"/v2/kiln-e2e/remote/tags/list"); !strings.Contains(got, tag) {
		t.Errorf("the registry lacks %s: %s", tag, got)
	}

	// Outputs to the client: a docker archive that dockerd loads, the filesystem.
	archive := filepath.Join(t.TempDir(), "img.tar")
	fsDir := filepath.Join(t.TempDir(), "fs")
	s.mustBuildx(t, cfg, "buildx", "build", "--builder", builder, "--progress=plain", "-t", "kiln-e2e/remote-out:"+tag,
		"-o", "type=docker,dest="+archive, "-o", "type=local,dest="+fsDir, ctx)
	if got, _ := os.ReadFile(filepath.Join(fsDir, "r")); string(got) != "remote\n" {
		t.Errorf("-o type=local: /r = %q", got)
	}
	dockerCLI := testworld.Docker(t)
	if out := run(t, dockerCLI, "load", "-i", archive); !strings.Contains(out, "kiln-e2e/remote-out:"+tag) {
		t.Errorf("docker load of -o type=docker: %s", out)
	}
	defer removeImage(t, dockerCLI, "kiln-e2e/remote-out:"+tag)
	if got := run(t, dockerCLI, "run", "--rm", "kiln-e2e/remote-out:"+tag, "cat", "/r"); got != "remote\n" {
		t.Errorf("the loaded image ran with %q", got)
	}

	// buildx du lists the step cache and the kept context; prune empties them.
	if out := s.mustBuildx(t, cfg, "buildx", "du", "--builder", builder); !strings.Contains(out, "Reclaimable") {
		t.Errorf("buildx du:\n%s", out)
	}
	s.mustBuildx(t, cfg, "buildx", "prune", "--builder", builder, "-f")
	if out := s.mustBuildx(t, cfg, "buildx", "build", "--builder", builder, "--progress=plain", ctx); strings.Contains(out, "CACHED") {
		t.Errorf("a build after buildx prune used the cache:\n%s", out)
	}

	ref2 := reg + "/kiln-e2e/buildctl:" + tag
	out = run(t, buildctl, "--addr", "unix://"+bkSock, "build", "--frontend", "dockerfile.v0",
		"--local", "context="+ctx, "--local", "dockerfile="+ctx,
		"--output", "type=image,name="+ref2+",push=true,registry.insecure=true")
	if got := run(t, "curl", "-sf", "http://"+reg+"/v2/kiln-e2e/buildctl/tags/list"); !strings.Contains(got, tag) {
		t.Errorf("buildctl did not push %s: %s\n%s", ref2, got, out)
	}
}

// TestBuildxSecretAndSSH: docker build --secret and --ssh reach RUN --mount through
// the session (a real ssh-agent answers through buildx), and nothing of the secret is
// in the image.
func TestBuildxSecretAndSSH(t *testing.T) {
	reg := testworld.Registry(t)
	cfg := testworld.Buildx(t)
	debian := testworld.Debian(t)
	s := startServer(t, "--insecure-registry", reg)
	dir := t.TempDir()
	secret := filepath.Join(dir, "tok")
	if err := os.WriteFile(secret, []byte("s3cret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	stop := testworld.Start(t, agent)
	defer stop()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// SSH2_AGENTC_REQUEST_IDENTITIES; a real agent answers type 12.
	const ask = `perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK}) or die "connect: $!"; ` +
		`print $s pack("NC", 1, 11); read($s, $b, 5) == 5 or die "short"; print "agent answered ", unpack("x4C", $b), "\n"' > /agent`
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + debian + "\n" +
		"RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-16 > /tok.sum\n" +
		"RUN --mount=type=secret,id=tok,env=TOK test \"$TOK\" = s3cret-value && echo env-ok > /env\n" +
		"RUN --mount=type=ssh " + ask + "\n"})
	out := filepath.Join(dir, "out")
	s.mustBuildx(t, cfg, "build", "--progress=plain", "--secret", "id=tok,src="+secret, "--ssh", "default="+sock,
		"-o", "type=local,dest="+out, ctx)
	for name, want := range map[string]string{"env": "env-ok\n", "agent": "agent answered 12\n"} {
		if got, _ := os.ReadFile(filepath.Join(out, name)); string(got) != want {
			t.Errorf("/%s = %q, want %q", name, got, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(out, "tok.sum")); len(got) != 17 {
		t.Errorf("/tok.sum = %q", got)
	}
	if _, err := os.Stat(filepath.Join(out, "run", "secrets", "tok")); !os.IsNotExist(err) {
		t.Errorf("the secret's mount point is in the image: %v", err)
	}
	tarPath := filepath.Join(dir, "fs.tar")
	s.mustBuildx(t, cfg, "build", "--progress=plain", "--secret", "id=tok,src="+secret, "--ssh", "default="+sock,
		"-o", "type=tar,dest="+tarPath, ctx)
	if data, _ := os.ReadFile(tarPath); len(data) == 0 || strings.Contains(string(data), "s3cret-value") {
		t.Errorf("the image's filesystem (%d bytes) holds the secret, or is empty", len(data))
	}
	// A required secret the client does not give fails the build, naming the line.
	req := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN --mount=type=secret,id=tok,required=true true\n"})
	out2, code := s.buildx(t, cfg, "", "build", "--progress=plain", req)
	if code == 0 || !strings.Contains(out2, "secret tok: not found") || !strings.Contains(out2, ">>> RUN --mount=type=secret,id=tok,required=true") {
		t.Errorf("build without the secret: exit %d\n%s", code, out2)
	}
}

// TestBuildxNetworkNone: docker build --network=none (buildx: force-network-mode=none;
// the classic CLI: /build's networkmode=none) takes RUN's network away: a RUN that
// reaches a listener of the test's on 127.0.0.1 succeeds by default and fails without
// network. (buildx refuses an unknown mode itself; TestFrontendNetworkMode covers
// kiln's refusal.)
func TestBuildxNetworkNone(t *testing.T) {
	reg := testworld.Registry(t)
	cfg := testworld.Buildx(t)
	s := startServer(t, "--insecure-registry", reg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello"))
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\n" +
		"RUN nc " + host + " " + port + " </dev/null >/got && grep -q hello /got\n"})

	s.mustBuildx(t, cfg, "build", "--progress=plain", ctx)
	s.mustBuildx(t, cfg, "build", "--progress=plain", "--network=host", ctx)
	out, code := s.buildx(t, cfg, "", "build", "--progress=plain", "--network=none", ctx)
	if code == 0 || !strings.Contains(out, "did not complete successfully") {
		t.Errorf("buildx --network=none: exit %d, want the RUN to fail without network\n%s", code, out)
	}
	if strings.Contains(out, "CACHED") {
		t.Errorf("buildx --network=none reused a step run with the network:\n%s", out)
	}

	// The classic CLI's /build: networkmode=none.
	classic := []string{"DOCKER_BUILDKIT=0", "DOCKER_CONFIG=" + cfg}
	if out, code := s.docker(t, classic, "", "build", ctx); code != 0 {
		t.Errorf("/build: exit %d\n%s", code, out)
	}
	if out, code := s.docker(t, classic, "", "build", "--network=none", ctx); code == 0 || !strings.Contains(out, "returned a non-zero code") {
		t.Errorf("/build networkmode=none: exit %d, want the RUN to fail without network\n%s", code, out)
	}
}
