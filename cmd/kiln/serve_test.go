package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/apiserver"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
)

// syncBuffer collects a server's log while its goroutines write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// parseServeFlags parses kiln serve's flags as the command line would, with the state
// directory in the test's temp dir unless args name one.
func parseServeFlags(t *testing.T, args ...string) *serveFlags {
	t.Helper()
	f := &serveFlags{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addServeFlags(fs, f)
	if err := fs.Parse(append([]string{"--state-dir", t.TempDir()}, args...)); err != nil {
		t.Fatal(err)
	}
	return f
}

// startTestDaemon starts `kiln serve` with args in chroot isolation and stops it when
// the test ends. stop stops it earlier and returns wait's error.
func startTestDaemon(t *testing.T, args ...string) (d *daemon, logs *syncBuffer, stop func() error) {
	t.Helper()
	f := parseServeFlags(t, append([]string{"--isolation=chroot", "-v", "debug"}, args...)...)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	d, err := startDaemon(ctx, f, fakeHost(t, false, nil), logs)
	if err != nil {
		cancel()
		t.Fatalf("kiln serve %v: %v", args, err)
	}
	var once sync.Once
	var werr error
	stop = func() error {
		once.Do(func() {
			cancel()
			werr = d.wait(ctx)
		})
		return werr
	}
	t.Cleanup(func() { _ = stop() })
	return d, logs, stop
}

// unixClient is an HTTP client that reaches every URL through the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// ping GETs /_ping and returns an error unless the answer is kiln's "OK".
func ping(c *http.Client, url string) error {
	resp, err := c.Get(url + "/_ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "OK" || !strings.HasPrefix(resp.Header.Get("Server"), "kiln/") {
		return fmt.Errorf("/_ping: %d %q (Server %q)", resp.StatusCode, body, resp.Header.Get("Server"))
	}
	return nil
}

func TestServeOnUnixSocketAndTCP(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "run", "kiln.sock")
	d, logs, stop := startTestDaemon(t, "-H", "unix://"+sock, "-H", "tcp://127.0.0.1:0")

	if len(d.hosts) != 2 || d.hosts[0] != "unix://"+sock || !regexp.MustCompile(`^tcp://127\.0\.0\.1:[1-9][0-9]*$`).MatchString(d.hosts[1]) {
		t.Fatalf("hosts %q, want the socket and a bound TCP port", d.hosts)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	if err := ping(unixClient(sock), "http://kiln"); err != nil {
		t.Errorf("over the socket: %v", err)
	}
	tcpURL := "http://" + strings.TrimPrefix(d.hosts[1], "tcp://")
	if err := ping(&http.Client{Timeout: 10 * time.Second}, tcpURL); err != nil {
		t.Errorf("over TCP: %v", err)
	}

	if err := stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after shutdown (%v)", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(d.hosts[1], "tcp://"), time.Second); err == nil {
		t.Error("the TCP port still accepts connections after shutdown")
	}
	if out := logs.String(); !strings.Contains(out, "Listening on "+d.hosts[1]) || !strings.Contains(out, "path=/_ping") {
		t.Errorf("log lacks the listeners or the access log:\n%s", out)
	}
}

func TestServeCommandPrintsDockerHost(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	stderr := &syncBuffer{}
	cmd := newServeCommand(stderr, fakeHost(t, false, nil))
	cmd.SetArgs([]string{"--state-dir", stateDir, "--isolation=chroot"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	// The default listener is the socket in the state directory.
	sock := filepath.Join(stateDir, "kiln.sock")
	want := "export DOCKER_HOST=unix://" + sock + "\n"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 10s; stderr:\n%s", want, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ping(unixClient(sock), "http://kiln"); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(filepath.Join(stateDir, "builds")); err != nil || !fi.IsDir() {
		t.Errorf("no builds/ in the state directory: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("kiln serve returned %v after cancellation", err)
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatal("kiln serve did not stop")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after shutdown (%v)", err)
	}
}

func TestServeRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	emptyToken := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(emptyToken, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Subtests run in parallel, after this function returns: close in Cleanup.
	t.Cleanup(func() { busy.Close() })
	sock := filepath.Join(dir, "refused.sock")

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"in place outside a container", []string{"--isolation=inplace"}, "--force"},
		{"unknown isolation", []string{"--isolation=vm"}, "--isolation"},
		{"unknown seccomp", []string{"--seccomp=off"}, `--seccomp: unknown value "off"; give default or unconfined`},
		{"unknown protocol", []string{"-H", "http://127.0.0.1:2375"}, "unknown protocol"},
		{"TLS without certificates", []string{"--tlsverify"}, "need --tlscert and --tlskey"},
		{"missing token file", []string{"--auth-token-file", filepath.Join(dir, "nope")}, "--auth-token-file"},
		{"empty token file", []string{"--auth-token-file", emptyToken}, "is empty"},
		{"no builds allowed", []string{"--max-concurrent-builds=0"}, "at least 1"},
		{"negative queue bound", []string{"--max-queued-builds=-1"}, "--max-queued-builds -1"},
		{"bad log format", []string{"--log-format=xml"}, "--log-format"},
		{"positional argument", []string{"now"}, "unknown command"},
		// The socket made for the first listener goes away when the second fails.
		{"port in use", []string{"-H", "unix://" + sock, "-H", "tcp://" + busy.Addr().String()}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Not run(): a server that started by mistake must stop, failing the test
			// rather than hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := newRootCommand(io.Discard, io.Discard, fakeHost(t, false, nil))
			cmd.SetArgs(append([]string{"serve", "--state-dir", t.TempDir()}, tt.args...))
			err := cmd.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("kiln serve %v: error %v, want one containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
	t.Cleanup(func() {
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed start left its socket behind (%v)", err)
		}
	})
}

func TestPlanServe(t *testing.T) {
	t.Parallel()
	f := parseServeFlags(t, "--insecure-registry", "127.0.0.1:5000", "--skip-tls-verify-registry", "reg.example", "--push-on-build", "--max-concurrent-builds=4")
	cfg, err := planServe(f, fakeHost(t, false, nil), credentials.Chain())
	if err != nil {
		t.Fatal(err)
	}
	if want := (hostSpec{"unix", filepath.Join(f.stateDir, "kiln.sock")}); len(cfg.hosts) != 1 || cfg.hosts[0] != want {
		t.Errorf("hosts %+v, want the default %+v", cfg.hosts, want)
	}
	b := cfg.build
	if b.Workspace.Isolation != isolation.Chroot || b.Workspace.StateDir != filepath.Join(f.stateDir, "builds") ||
		b.Workspace.MountCacheDir != filepath.Join(f.stateDir, "cache", "mounts") || b.MaxConcurrent != 4 || !b.PushOnBuild || b.Keychain == nil {
		t.Errorf("build config %+v", b)
	}
	if b.Workspace.SeccompUnconfined {
		t.Error("seccomp unconfined by default")
	}
	if cfg, err := planServe(parseServeFlags(t, "--seccomp=unconfined"), fakeHost(t, false, nil), credentials.Chain()); err != nil || !cfg.build.Workspace.SeccompUnconfined {
		t.Errorf("--seccomp=unconfined: %v, unconfined %v", err, err == nil && cfg.build.Workspace.SeccompUnconfined)
	}
	// In place, the server's own secrets are hidden from RUN where namespaces work.
	inPlace := fakeHost(t, true, map[string]string{"HOME": "/root"})
	inPlace.inPlaceNamespaces = func(context.Context) error { return nil }
	tokenFile := writeTemp(t, "token")
	if cfg, err := planServe(parseServeFlags(t, "--state-dir", t.TempDir(), "--auth-token-file", tokenFile), inPlace, credentials.Chain()); err != nil {
		t.Errorf("in place: %v", err)
	} else if ws := cfg.build.Workspace; !ws.InPlaceNamespaces || !slices.Contains(ws.Hidden, tokenFile) ||
		!slices.Contains(ws.Hidden, "/root/.docker/config.json") || !slices.Contains(ws.Hidden, "/kiln") {
		t.Errorf("in place: namespaces %v, hidden %q", ws.InPlaceNamespaces, ws.Hidden)
	}
	if want := (builder.InputLimits{MaxDockerfileBytes: 1 << 20, MaxInstructions: builder.DefaultMaxInstructions, MaxLayers: 125,
		MaxArchiveBytes: 32 << 30, MaxArchiveRatio: 100}); b.Workspace.InputLimits != want || b.MaxContextRatio != 100 {
		t.Errorf("default limits %+v, context ratio %d; want %+v, 100", b.Workspace.InputLimits, b.MaxContextRatio, want)
	}
	if !b.PlainHTTP("127.0.0.1:5000") || b.PlainHTTP("reg.example") || !b.Insecure("reg.example") || b.Insecure("127.0.0.1:5000") {
		t.Error("--insecure-registry / --skip-tls-verify-registry select the wrong registries")
	}

	// In a container, auto means in place, and the state directory (the store
	// included) is kept out of the builds.
	// So is a socket outside it.
	cfg, err = planServe(parseServeFlags(t, "-H", "unix:///tmp/kiln-test.sock", "-H", "tcp://127.0.0.1:2375"), fakeHost(t, true, nil), credentials.Chain())
	if err != nil {
		t.Fatal(err)
	}
	ws := cfg.build.Workspace
	if ws.Isolation != isolation.InPlace || ws.Ignore == nil {
		t.Fatalf("in a container: isolation %v, ignore %v", ws.Isolation, ws.Ignore)
	}
	for _, p := range []string{filepath.Join(cfg.stateDir, "store", "index.json"), "/proc", "/tmp/kiln-test.sock"} {
		if !ws.Ignore.Match(p) {
			t.Errorf("in place, %s is not ignored (%v)", p, ws.Ignore.Paths())
		}
	}
	if ws.Ignore.Match("/tmp") {
		t.Error("in place, all of /tmp is ignored")
	}
}

func TestServeTLSClientCertificates(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	d, _, _ := startTestDaemon(t, "-H", "tcp://127.0.0.1:0", "--tlsverify",
		"--tlscacert", pki.caCert, "--tlscert", pki.serverCert, "--tlskey", pki.serverKey)
	addr := strings.TrimPrefix(d.hosts[0], "tcp://")

	caPEM, err := os.ReadFile(pki.caCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
		}}
	}
	if err := ping(client(), "https://"+addr); err == nil {
		t.Error("a client without a certificate was served")
	}
	if err := ping(&http.Client{Timeout: 10 * time.Second}, "http://"+addr); err == nil {
		t.Error("a plain HTTP client was served")
	}
	cert, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(client(cert), "https://"+addr); err != nil {
		t.Errorf("a client with a certificate: %v", err)
	}

	cli := dockerCLI(t)
	out, err := runDocker(cli, t.TempDir(), "--tlsverify", "--tlscacert", pki.caCert, "--tlscert", pki.clientCert,
		"--tlskey", pki.clientKey, "-H", d.hosts[0], "version")
	if err != nil || !strings.Contains(out, "Server: kiln") {
		t.Errorf("docker --tlsverify version: %v\n%s", err, out)
	}
	out, err = runDocker(cli, t.TempDir(), "--tlsverify", "--tlscacert", pki.caCert, "-H", d.hosts[0], "version")
	if err == nil {
		t.Errorf("docker --tlsverify without a client certificate succeeded:\n%s", out)
	}
}

func TestServeAnswersTheDockerCLI(t *testing.T) {
	t.Parallel()
	cli := dockerCLI(t)
	sock := filepath.Join(t.TempDir(), "kiln.sock")
	d, _, _ := startTestDaemon(t, "-H", "unix://"+sock)

	out, err := runDocker(cli, t.TempDir(), "-H", d.hosts[0], "version")
	if err != nil || !strings.Contains(out, "Server: kiln") || !strings.Contains(out, "1.41 (minimum version 1.12)") {
		t.Errorf("docker version: %v\n%s", err, out)
	}
	out, err = runDocker(cli, t.TempDir(), "-H", d.hosts[0], "info")
	if err != nil || !strings.Contains(out, "Storage Driver: kiln") || !strings.Contains(out, "Isolation: chroot") {
		t.Errorf("docker info: %v\n%s", err, out)
	}
}

func TestServeAuthTokenWithTheDockerCLI(t *testing.T) {
	t.Parallel()
	cli := dockerCLI(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("kiln-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _, _ := startTestDaemon(t, "-H", "unix://"+filepath.Join(t.TempDir(), "kiln.sock"), "--auth-token-file", tokenFile)

	withToken := t.TempDir()
	config := `{"HttpHeaders": {"Authorization": "Bearer kiln-test-token"}}`
	if err := os.WriteFile(filepath.Join(withToken, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runDocker(cli, withToken, "-H", d.hosts[0], "version"); err != nil {
		t.Errorf("docker version with the token in config.json: %v\n%s", err, out)
	}
	out, err := runDocker(cli, t.TempDir(), "-H", d.hosts[0], "version")
	if err == nil || !strings.Contains(out, "unauthorized: kiln requires a bearer token") {
		t.Errorf("docker version without the token: %v\n%s", err, out)
	}
}

// dockerCLI returns the docker CLI's path, skipping the test without one. The CLI
// talks only to the kiln server under test; no docker daemon is involved.
func dockerCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the docker CLI")
	}
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Skipf("no docker CLI: %v", err)
	}
	return cli
}

// runDocker runs the docker CLI with its own config directory and none of the
// caller's DOCKER_* settings, and returns its combined output.
func runDocker(cli, configDir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+configDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestShutdownCancelsRunningRequests(t *testing.T) {
	t.Parallel()
	cfg, err := planServe(parseServeFlags(t, "-H", "tcp://127.0.0.1:0", "--isolation=chroot"), fakeHost(t, false, nil), credentials.Chain())
	if err != nil {
		t.Fatal(err)
	}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := listenAll(ctx, lg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in for a streaming build: it runs until its context ends, then says why.
	d.start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "started")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		fmt.Fprintln(w, context.Cause(r.Context()))
	}), nil)

	resp, err := http.Get("http://" + strings.TrimPrefix(d.hosts[0], "tcp://") + "/build")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	waited := make(chan error, 1)
	go func() { cancel(); waited <- d.wait(ctx) }()
	rest, _ := io.ReadAll(br)
	if want := apiserver.ErrShutdown.Error() + "\n"; string(rest) != want {
		t.Errorf("the running request ended with %q, want %q", rest, want)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("wait: %v", err)
		}
	case <-time.After(shutdownGrace):
		t.Fatal("shutdown did not finish")
	}
}

// kiln serve takes kiln build's registry options: mirrors reach the build config, and
// a registry with its own CA gets its own transport for pulls and pushes.
func TestPlanServeRegistries(t *testing.T) {
	pki := newTestPKI(t)
	f := parseServeFlags(t, "-H", "tcp://127.0.0.1:0", "--isolation=chroot",
		"--registry-map", "example.invalid=127.0.0.1:5000", "--skip-default-registry-fallback",
		"--registry-certificate", "secure.example.invalid="+pki.caCert)
	cfg, err := planServe(f, fakeHost(t, false, nil), credentials.Chain())
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.build
	if b.Mirrors == nil || !slices.Equal(b.Mirrors("example.invalid"), []string{"127.0.0.1:5000"}) || !b.SkipDefaultFallback {
		t.Error("mirrors not planned")
	}
	if b.Transport == nil || b.Transport("secure.example.invalid") == b.Transport("other.example.invalid") {
		t.Error("the registry with its own CA shares the default transport")
	}
	if _, err := planServe(parseServeFlags(t, "-H", "tcp://127.0.0.1:0", "--isolation=chroot", "--registry-certificate", "x=/no/such/ca.pem"), fakeHost(t, false, nil), credentials.Chain()); err == nil {
		t.Error("a missing registry CA file was accepted")
	}
}

// TestBuildkitMemoryContexts: the BuildKit door receives contexts into the same tmpfs
// and budget as /build.
func TestBuildkitMemoryContexts(t *testing.T) {
	t.Parallel()
	bk := buildkitConfig(apiserver.BuildConfig{MemoryDir: "/dev/shm", MemoryContextBytes: 64 << 20}, nil, nil)
	if bk.MemoryDir != "/dev/shm" || bk.MemoryContextBytes != 64<<20 {
		t.Errorf("the door's memory contexts: %q, %d; want /dev/shm, 64 MiB", bk.MemoryDir, bk.MemoryContextBytes)
	}
}

func TestMemoryContexts(t *testing.T) {
	t.Parallel()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("/dev/shm is not a tmpfs here")
	}
	if dir, n := memoryContexts("/dev/shm", 64<<20); dir != "/dev/shm" || n <= 0 || n > 64<<20 {
		t.Errorf("memoryContexts(/dev/shm, 64MiB) = %q, %d; want /dev/shm and at most 64 MiB", dir, n)
	}
	if dir, n := memoryContexts("/dev/shm", 0); dir != "" || n != 0 {
		t.Errorf("--context-memory=0: got %q, %d; want it off", dir, n)
	}
	if err := unix.Statfs(t.TempDir(), &st); err == nil && st.Type != unix.TMPFS_MAGIC {
		if dir, n := memoryContexts(t.TempDir(), 64<<20); dir != "" || n != 0 {
			t.Errorf("a directory that is not a tmpfs: got %q, %d; want it off", dir, n)
		}
	}
}

// TestPlanServeSecrets: kiln serve --secret gives /build the server's secrets, parsed
// as kiln build parses them; none means a nil store, a bad spec refuses to start.
func TestPlanServeSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TOK": "from-env"}
	cfg, err := planServe(parseServeFlags(t, "--secret", "id=tok,env=TOK"), fakeHost(t, false, env), credentials.Chain())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.build.Secrets == nil {
		t.Fatal("--secret: no secret store")
	}
	if v, err := cfg.build.Secrets.GetSecret(context.Background(), "tok"); err != nil || string(v) != "from-env" {
		t.Errorf("GetSecret(tok) = %q, %v", v, err)
	}
	if _, err := cfg.build.Secrets.GetSecret(context.Background(), "other"); !errors.Is(err, builder.ErrSecretNotFound) {
		t.Errorf("GetSecret(other) err = %v, want ErrSecretNotFound", err)
	}
	cfg, err = planServe(parseServeFlags(t), fakeHost(t, false, env), credentials.Chain())
	if err != nil || cfg.build.Secrets != nil {
		t.Errorf("no --secret: store %v, err %v", cfg.build.Secrets, err)
	}
	if _, err := planServe(parseServeFlags(t, "--secret", "src=/nonexistent"), fakeHost(t, false, env), credentials.Chain()); err == nil ||
		!strings.Contains(err.Error(), "--secret") {
		t.Errorf("a bad --secret: err = %v", err)
	}
}

// TestServeLimitFlags: the limit flags reach the workspace every door builds in; 0
// turns a count or ratio limit off (builder.InputLimits' negative), and bad values are
// refused naming the flag.
func TestServeLimitFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		want    builder.InputLimits
		ratio   int64
		wantErr string
	}{
		{[]string{"--max-dockerfile-size=64KiB", "--max-instructions=50", "--max-layers=60", "--max-add-size=1GiB", "--max-decompression-ratio=20"},
			builder.InputLimits{MaxDockerfileBytes: 64 << 10, MaxInstructions: 50, MaxLayers: 60, MaxArchiveBytes: 1 << 30, MaxArchiveRatio: 20}, 20, ""},
		{[]string{"--max-instructions=0", "--max-layers=0", "--max-decompression-ratio=0"},
			builder.InputLimits{MaxDockerfileBytes: 1 << 20, MaxInstructions: -1, MaxLayers: -1, MaxArchiveBytes: 32 << 30, MaxArchiveRatio: -1}, 0, ""},
		{[]string{"--max-layers=-1"}, builder.InputLimits{}, 0, "--max-layers -1: must be 0 (no limit) or more"},
		{[]string{"--max-dockerfile-size=0"}, builder.InputLimits{}, 0, "--max-dockerfile-size"},
		{[]string{"--max-add-size=lots"}, builder.InputLimits{}, 0, "--max-add-size"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			cfg, err := planServe(parseServeFlags(t, tt.args...), fakeHost(t, false, nil), credentials.Chain())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.build.Workspace.InputLimits != tt.want || cfg.build.MaxContextRatio != tt.ratio {
				t.Errorf("limits %+v ratio %d, want %+v %d", cfg.build.Workspace.InputLimits, cfg.build.MaxContextRatio, tt.want, tt.ratio)
			}
		})
	}
}
