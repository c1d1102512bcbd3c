package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

const testDockerfile = "FROM scratch\nCOPY a /a\n"

// testContext makes a context directory holding a Dockerfile and returns it.
func testContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(testDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "Other.Dockerfile"), []byte("FROM other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// parseFlags parses args as kiln build does.
func parseFlags(t *testing.T, args ...string) (*buildFlags, *pflag.FlagSet) {
	t.Helper()
	f := &buildFlags{}
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	addBuildFlags(fs, f)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return f, fs
}

// fakeHost is a host outside (or inside) a container with fixed answers; the state
// directory it creates lives in the test's temp dir.
func fakeHost(t *testing.T, inContainer bool, env map[string]string) host {
	return host{
		inContainer: func() bool { return inContainer },
		// The kernel's answer is TestPlanInPlace's business; elsewhere, refused.
		inPlaceNamespaces: func(context.Context) error { return errors.New("fake host: no user namespaces") },
		mountPoints:       func() ([]string, error) { return []string{"/", "/workspace", "/etc/hosts", "/var/run/secrets"}, nil },
		executable:        func() (string, error) { return "/kiln/kiln", nil },
		lookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		mkdirTemp: func() (string, error) { return os.MkdirTemp(t.TempDir(), "state-") },
		// In place the run's state goes under the executable's directory: /kiln/state
		// on this fake host, which must not be created on the machine running the test.
		mkdirRun: func(parent string) (string, error) {
			if !strings.HasPrefix(parent, "/kiln/") {
				t.Errorf("in place, the run's state goes under %s, want kiln's own /kiln", parent)
			}
			return os.MkdirTemp(t.TempDir(), "run-")
		},
	}
}

func ptr(s string) *string { return &s }

func TestPlanBuildRequest(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	absDockerfile := filepath.Join(ctxDir, "sub", "Other.Dockerfile")
	env := map[string]string{"FROM_ENV": "env-value", "EMPTY": ""}

	tests := []struct {
		name string
		args []string
		want builder.Request // Context is checked separately
	}{
		{
			name: "defaults",
			args: []string{"--no-push"},
			want: builder.Request{Dockerfile: []byte(testDockerfile), DockerfileName: "Dockerfile", SnapshotMode: snapshot.ModeRedo},
		},
		{
			name: "dockerfile relative to the context",
			args: []string{"--no-push", "-f", "sub/Other.Dockerfile"},
			want: builder.Request{Dockerfile: []byte("FROM other\n"), DockerfileName: "sub/Other.Dockerfile"},
		},
		{
			name: "absolute dockerfile",
			args: []string{"--no-push", "--dockerfile", absDockerfile},
			want: builder.Request{Dockerfile: []byte("FROM other\n"), DockerfileName: absDockerfile},
		},
		{
			name: "build args",
			args: []string{"--no-push", "--build-arg", "A=1", "--build-arg", "B=", "--build-arg", "C=x=y",
				"--build-arg", "FROM_ENV", "--build-arg", "EMPTY", "--build-arg", "UNSET"},
			want: builder.Request{BuildArgs: map[string]*string{
				"A": ptr("1"), "B": ptr(""), "C": ptr("x=y"), "FROM_ENV": ptr("env-value"), "EMPTY": ptr(""),
			}},
		},
		{
			name: "labels, target, platform and build behaviour",
			args: []string{"--no-push", "--label", "a=b", "--label", "empty", "--label=c=d=e", "--target", "runtime",
				"--custom-platform", "linux/arm64/v8", "--skip-unused-stages", "--reproducible",
				"--snapshot-mode", "full", "--single-snapshot"},
			want: builder.Request{
				Labels: map[string]string{"a": "b", "empty": "", "c": "d=e"},
				Target: "runtime", Platform: "linux/arm64/v8", SkipUnusedStages: true, Reproducible: true,
				SnapshotMode: snapshot.ModeFull, SingleSnapshot: true,
			},
		},
		{
			name: "time snapshots",
			args: []string{"--no-push", "--snapshot-mode=time"},
			want: builder.Request{SnapshotMode: snapshot.ModeTime},
		},
		{
			name: "zstd compression",
			args: []string{"--no-push", "--compression=zstd", "--compression-level=19"},
			want: builder.Request{Compression: snapshot.Zstd, CompressionLevel: 19},
		},
		{
			name: "kaniko's default level is the compressor's",
			args: []string{"--no-push", "--compression=gzip", "--compression-level=-1"},
			want: builder.Request{Compression: snapshot.Gzip},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, false, env))
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			if p.req.Context == nil || p.req.Context.Dir != ctxDir {
				t.Errorf("context = %+v, want the directory %s", p.req.Context, ctxDir)
			}
			if p.req.Phases == nil {
				t.Error("no Phases in the request: the context's time and the export's go nowhere")
			}
			got := *p.req
			got.Context, got.Phases = nil, nil
			want := tt.want
			if want.Dockerfile == nil {
				want.Dockerfile, want.DockerfileName = []byte(testDockerfile), "Dockerfile"
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanBuildWorkspace(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	given := filepath.Join(t.TempDir(), "given-state")

	tests := []struct {
		name         string
		args         []string
		inContainer  bool
		wantMode     isolation.Mode
		wantIgnore   []string // "STATE" stands for the state directory
		wantOwnState bool
	}{
		{
			name:         "auto outside a container is chroot",
			wantMode:     isolation.Chroot,
			wantOwnState: true,
		},
		{
			name:         "chroot ignores only --ignore-path",
			args:         []string{"--isolation=chroot", "--ignore-path", "/cache", "--ignore-path", "tmp/x/"},
			inContainer:  true,
			wantMode:     isolation.Chroot,
			wantIgnore:   []string{"/cache", "/tmp/x"},
			wantOwnState: true,
		},
		{
			name:        "auto inside a container is in place",
			inContainer: true,
			wantMode:    isolation.InPlace,
			wantIgnore: []string{"/busybox", "/dev", "/etc/hosts", "/kaniko", "/kiln", "/proc", "/sys", "STATE",
				"/var/run", "/workspace"},
			wantOwnState: true,
		},
		{
			name:        "in place keeps /var/run when asked, adds --ignore-path",
			args:        []string{"--isolation=inplace", "--ignore-var-run=false", "--ignore-path=/cache"},
			inContainer: true,
			wantMode:    isolation.InPlace,
			wantIgnore: []string{"/busybox", "/cache", "/dev", "/etc/hosts", "/kaniko", "/kiln", "/proc", "/sys", "STATE",
				"/var/run/secrets", "/workspace"},
			wantOwnState: true,
		},
		{
			name:       "forced in place outside a container, given state dir",
			args:       []string{"--isolation=in-place", "--force", "--state-dir", given},
			wantMode:   isolation.InPlace,
			wantIgnore: []string{"/busybox", "/dev", "/etc/hosts", given, "/kaniko", "/kiln", "/proc", "/sys", "/var/run", "/workspace"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir, "--no-push"}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, tt.inContainer, nil))
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			ws := p.workspace
			if ws.Isolation != tt.wantMode {
				t.Errorf("isolation = %v, want %v", ws.Isolation, tt.wantMode)
			}
			if p.ownStateDir != tt.wantOwnState {
				t.Errorf("ownStateDir = %v, want %v", p.ownStateDir, tt.wantOwnState)
			}
			if fi, err := os.Stat(ws.StateDir); err != nil || !fi.IsDir() {
				t.Errorf("state directory %q was not created: %v", ws.StateDir, err)
			}
			want := snapshot.NewIgnore(replace(tt.wantIgnore, "STATE", ws.StateDir)...).Paths()
			if diff := cmp.Diff(want, ws.Ignore.Paths()); diff != "" {
				t.Errorf("ignore set (-want +got):\n%s", diff)
			}
		})
	}
}

func replace(list []string, old, repl string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		if s == old {
			s = repl
		}
		out[i] = s
	}
	return out
}

func TestPlanBuildOutputs(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	tests := []struct {
		name     string
		args     []string
		wantPush bool
		wantTags []string
		wantHTTP []bool // per destination: pushed over plain HTTP
	}{
		{name: "no push", args: []string{"--no-push"}},
		{name: "tar path alone", args: []string{"--tar-path", "x.tar"}},
		{name: "oci layout alone", args: []string{"--oci-layout-path", "out"}},
		{
			name:     "destination pushes",
			args:     []string{"-d", "registry.test/app:v1", "--destination", "app"},
			wantPush: true,
			wantTags: []string{"registry.test/app:v1", "index.docker.io/library/app:latest"},
			wantHTTP: []bool{false, false},
		},
		{
			name:     "destination with no-push only tags",
			args:     []string{"-d", "registry.test/app:v1", "--no-push", "--tar-path", "x.tar"},
			wantTags: []string{"registry.test/app:v1"},
			wantHTTP: []bool{false},
		},
		{
			name:     "insecure registry",
			args:     []string{"-d", "registry.test/app:v1", "-d", "other.test/app:v1", "--insecure-registry", "other.test"},
			wantPush: true,
			wantTags: []string{"registry.test/app:v1", "other.test/app:v1"},
			wantHTTP: []bool{false, true},
		},
		{
			name:     "insecure everywhere",
			args:     []string{"-d", "registry.test/app:v1", "--insecure"},
			wantPush: true,
			wantTags: []string{"registry.test/app:v1"},
			wantHTTP: []bool{true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, false, nil))
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			if p.outputs.push != tt.wantPush {
				t.Errorf("push = %v, want %v", p.outputs.push, tt.wantPush)
			}
			var tags []string
			var http []bool
			for _, d := range p.outputs.destinations {
				tags = append(tags, d.Name())
				http = append(http, d.Scheme() == "http")
			}
			if diff := cmp.Diff(tt.wantTags, tags); diff != "" {
				t.Errorf("destinations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHTTP, http); diff != "" {
				t.Errorf("plain HTTP per destination (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanBuildRegistry(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	tests := []struct {
		name        string
		args        []string
		plainHTTP   map[string]bool // registry -> pulls may use plain HTTP
		skipTLS     map[string]bool // registry -> pull skips verification
		pushSkipTLS map[string]bool // registry -> push skips verification
		wantRetries int
	}{
		{
			name:        "secure by default",
			skipTLS:     map[string]bool{"registry.test": false},
			pushSkipTLS: map[string]bool{"registry.test": false},
		},
		{
			name:        "insecure pull",
			args:        []string{"--insecure-pull", "--image-download-retry=3"},
			plainHTTP:   map[string]bool{"a.test": true, "b.test": true},
			wantRetries: 3,
		},
		{
			name:        "per-registry flags",
			args:        []string{"--insecure-registry=a.test", "--skip-tls-verify-registry=b.test"},
			plainHTTP:   map[string]bool{"a.test": true, "b.test": false},
			skipTLS:     map[string]bool{"a.test": false, "b.test": true},
			pushSkipTLS: map[string]bool{"a.test": false, "b.test": true},
		},
		{
			name:        "skip verify for pulls only",
			args:        []string{"--skip-tls-verify-pull"},
			skipTLS:     map[string]bool{"a.test": true},
			pushSkipTLS: map[string]bool{"a.test": false},
		},
		{
			name:        "skip verify for pushes only",
			args:        []string{"--skip-tls-verify"},
			skipTLS:     map[string]bool{"a.test": false},
			pushSkipTLS: map[string]bool{"a.test": true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir, "--no-push"}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, false, nil))
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			if p.registry.Keychain == nil {
				t.Error("no keychain")
			}
			for reg, want := range tt.plainHTTP {
				if got := p.registry.PlainHTTP != nil && p.registry.PlainHTTP(reg); got != want {
					t.Errorf("plain HTTP for %s = %v, want %v", reg, got, want)
				}
			}
			if len(tt.plainHTTP) == 0 && p.registry.PlainHTTP != nil && p.registry.PlainHTTP("a.test") {
				t.Error("plain HTTP allowed without --insecure-pull or --insecure-registry")
			}
			if p.registry.Retries != tt.wantRetries {
				t.Errorf("retries = %d, want %d", p.registry.Retries, tt.wantRetries)
			}
			for reg, want := range tt.skipTLS {
				if got := p.registry.Insecure(reg); got != want {
					t.Errorf("pull skips TLS verification for %s = %v, want %v", reg, got, want)
				}
			}
			for reg, want := range tt.pushSkipTLS {
				if got := p.outputs.skipTLSVerify(reg); got != want {
					t.Errorf("push skips TLS verification for %s = %v, want %v", reg, got, want)
				}
			}
		})
	}
}

func TestPlanBuildErrors(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	tests := []struct {
		name        string
		args        []string
		inContainer bool
		wantErr     string
	}{
		{name: "no destination", args: nil, wantErr: "you must provide --destination, or use --no-push"},
		{name: "name digest file without destination", args: []string{"--no-push", "--image-name-with-digest-file=f"}, wantErr: "you must provide --destination if setting --image-name-with-digest-file"},
		{name: "name tag digest file without destination", args: []string{"--no-push", "--image-name-tag-with-digest-file=f"}, wantErr: "--image-name-tag-with-digest-file"},
		{name: "digest destination", args: []string{"-d", "app@sha256:" + strings.Repeat("a", 64)}, wantErr: "--destination"},
		{name: "in place outside a container", args: []string{"--no-push", "--isolation=inplace"}, wantErr: "would overwrite this machine's files"},
		{name: "unknown isolation", args: []string{"--no-push", "--isolation=vm"}, wantErr: "--isolation"},
		{name: "unknown snapshot mode", args: []string{"--no-push", "--snapshot-mode=fast"}, wantErr: "--snapshot-mode"},
		{name: "unknown compression", args: []string{"--no-push", "--compression=xz"}, wantErr: "--compression=xz: want gzip or zstd"},
		{name: "no compression", args: []string{"--no-push", "--compression=none"}, wantErr: "--compression=none"},
		{name: "gzip level out of range", args: []string{"--no-push", "--compression-level=12"}, wantErr: "--compression-level: compression level 12 out of range: gzip takes 1-9"},
		{name: "zstd level out of range", args: []string{"--no-push", "--compression=zstd", "--compression-level=30"}, wantErr: "zstd takes 1-22"},
		{name: "bad platform", args: []string{"--no-push", "--custom-platform=linux/amd64/v2/x/y"}, wantErr: "--custom-platform"},
		{name: "empty label key", args: []string{"--no-push", "--label", "=v"}, wantErr: "--label"},
		{name: "missing dockerfile", args: []string{"--no-push", "-f", "nope/Dockerfile"}, wantErr: `no Dockerfile "nope/Dockerfile"`},
		{name: "unsupported context scheme", args: []string{"--no-push", "--context", "ftp://host/ctx.tar.gz"}, wantErr: "unknown context source ftp://"},
		{name: "bad --git", args: []string{"--no-push", "--git=depth=1"}, wantErr: "--git"},
		{name: "missing context sub-path", args: []string{"--no-push", "--context-sub-path=nope"}, wantErr: "--context-sub-path"},
		{name: "tar://stdin without stdin", args: []string{"--no-push", "--context", "tar://stdin"}, wantErr: "no standard input"},
		{name: "negative retries", args: []string{"--no-push", "--push-retry=-1"}, wantErr: "--push-retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"--context", ctxDir}, tt.args...)...)
			h := fakeHost(t, tt.inContainer, nil)
			var created []string
			mk := h.mkdirTemp
			h.mkdirTemp = func() (string, error) {
				d, err := mk()
				created = append(created, d)
				return d, err
			}
			_, err := planBuild(context.Background(), f, h)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("planBuild: err = %v, want one containing %q", err, tt.wantErr)
			}
			if len(created) > 0 {
				t.Errorf("a failed plan created state directories %v", created)
			}
		})
	}
}
