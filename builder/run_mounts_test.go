package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/test/testworld"
)

// secretValue is the value of the fake store's secret "tok": no byte of a built image
// may contain it.
const secretValue = "s3cr3t-Value-4f9a"

// fakeSecrets is a SecretStore over a map.
type fakeSecrets map[string]string

func (f fakeSecrets) GetSecret(_ context.Context, id string) ([]byte, error) {
	v, ok := f[id]
	if !ok {
		return nil, builder.ErrSecretNotFound
	}
	return []byte(v), nil
}

// fakeAgents is an SSHAgents whose only agent, "default", is a unix listener in the
// test that answers every connection with reply and then reads what the client sends.
type fakeAgents struct {
	sock  string
	reply string
	gone  bool // DialSSH fails, as when a client's session ended
	mu    sync.Mutex
	got   []string // what each connection sent
}

func newFakeAgents(t *testing.T, reply string) *fakeAgents {
	t.Helper()
	f := &fakeAgents{sock: filepath.Join(t.TempDir(), "agent.sock"), reply: reply}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.WriteString(c, f.reply)
				data, _ := io.ReadAll(c)
				f.mu.Lock()
				f.got = append(f.got, string(data))
				f.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return f
}

func (f *fakeAgents) CheckSSH(_ context.Context, id string) error {
	if id != "default" {
		return fmt.Errorf("agent %q: %w", id, builder.ErrSSHNotFound)
	}
	return nil
}

func (f *fakeAgents) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	if err := f.CheckSSH(ctx, id); err != nil {
		return nil, err
	}
	if f.gone {
		return nil, errors.New("the agent is gone")
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", f.sock)
}

// buildMounts builds a Dockerfile (BUSYBOX and DEBIAN replaced) in chroot isolation
// with the given providers, and returns the build's warnings too.
func buildMounts(t *testing.T, base map[string]string, df string, secrets builder.SecretStore, ssh builder.SSHAgents) (*builder.Result, error) {
	res, _, err := buildMountsWarnings(t, base, df, secrets, ssh)
	return res, err
}

func buildMountsWarnings(t *testing.T, base map[string]string, df string, secrets builder.SecretStore, ssh builder.SSHAgents) (*builder.Result, []string, error) {
	t.Helper()
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range base {
		df = strings.ReplaceAll(df, k, v)
	}
	var warnings []string
	res, err := builder.Build(context.Background(), &builder.Request{Dockerfile: []byte(df), Context: bctx, Secrets: secrets, SSH: ssh},
		builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}),
		builder.WithEvents(func(e builder.Event) {
			if w, ok := e.(builder.Warning); ok {
				warnings = append(warnings, w.Message)
			}
		}))
	return res, warnings, err
}

// requireNoTrace fails when a layer, the config or the history of img holds the
// secret's value or an entry at or below one of the mount paths.
func requireNoTrace(t *testing.T, img v1.Image, paths ...string) {
	t.Helper()
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secretValue)) {
		t.Errorf("the image config holds the secret: %s", raw)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		base := i == 0 // the base's own directories (/etc, /tmp) are no trace
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(secretValue)) {
			t.Errorf("layer %d holds the secret's value", i)
		}
		tr := tar.NewReader(bytes.NewReader(data))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
			for _, p := range paths {
				if !base && (name == p || strings.HasPrefix(name, p+"/") || strings.HasPrefix(p, name+"/")) {
					t.Errorf("layer %d has %s (a mount target %s, or a directory made for it)", i, name, p)
				}
			}
		}
	}
}

// TestRunMountSecret runs chroot builds with RUN --mount=type=secret: the RUN reads the
// secret at its target (default /run/secrets/<id>) with the mount's mode and owner, or
// in its environment, a missing required secret fails naming the line, a missing
// optional one is absent; and no image holds the value, the target or the directories
// made for it.
func TestRunMountSecret(t *testing.T) {
	w := newWorld(t)
	base := map[string]string{"BUSYBOX": w.busybox}
	store := fakeSecrets{"tok": secretValue, "other": "x"}
	// The RUNs print a digest of what they read: the value itself must not be in the
	// command (which is the history) nor in a file of the image.
	sum := sha256.Sum256([]byte(secretValue))
	digest := hex.EncodeToString(sum[:])[:16]
	check := `test "$(sha256sum <%s | cut -c1-16)" = ` + digest
	envCheck := `test "$(printf %s "$TOK" | sha256sum | cut -c1-16)" = ` + digest
	tests := []struct {
		name    string
		df      string
		store   builder.SecretStore
		want    map[string]string // files of the image
		paths   []string          // that must leave no trace
		wantErr []string
	}{
		{name: "default target, mode and owner",
			df:    "RUN --mount=type=secret,id=tok " + fmt.Sprintf(check, "/run/secrets/tok") + " && stat -c '%a %u:%g' /run/secrets/tok >/out",
			want:  map[string]string{"/out": "f 0644 0:0 400 0:0\n"},
			paths: []string{"/run/secrets/tok", "/run"}},
		{name: "target, mode, uid and gid, read by a user",
			df: "USER app\nRUN --mount=type=secret,id=tok,target=/etc/app/tok,mode=0440,uid=1000,gid=2000 " +
				fmt.Sprintf(check, "/etc/app/tok") + " && stat -c '%a %u:%g' /etc/app/tok >/home/app/out",
			want:  map[string]string{"/home/app/out": "f 0644 1000:1000 440 1000:2000\n"},
			paths: []string{"/etc/app"}},
		{name: "relative target under WORKDIR",
			df:    "WORKDIR /home\nRUN --mount=type=secret,id=tok,target=sub/tok " + fmt.Sprintf(check, "/home/sub/tok") + " && echo ok >/out",
			want:  map[string]string{"/out": "f 0644 0:0 ok\n", "/home/sub": ""},
			paths: []string{"/home/sub"}},
		{name: "id from the target's name",
			df:    "RUN --mount=type=secret,target=/x/tok " + fmt.Sprintf(check, "/x/tok") + " && echo ok >/out",
			want:  map[string]string{"/out": "f 0644 0:0 ok\n"},
			paths: []string{"/x"}},
		{name: "env only",
			df:    "RUN --mount=type=secret,id=tok,env=TOK " + envCheck + " && test ! -e /run/secrets/tok && echo ok >/out",
			want:  map[string]string{"/out": "f 0644 0:0 ok\n"},
			paths: []string{"/run"}},
		{name: "env and target",
			df: "RUN --mount=type=secret,id=tok,env=TOK,target=/tok " + envCheck + " && " +
				fmt.Sprintf(check, "/tok") + " && echo ok >/out",
			want:  map[string]string{"/out": "f 0644 0:0 ok\n"},
			paths: []string{"/tok"}},
		{name: "two secrets in one directory, env not kept for the next RUN",
			df: "RUN --mount=type=secret,id=tok,env=TOK --mount=type=secret,id=other test -e /run/secrets/other && " +
				"echo ok >/out\nRUN test -z \"$TOK\" && test ! -e /run/secrets && echo ok >/out2",
			want:  map[string]string{"/out": "f 0644 0:0 ok\n", "/out2": "f 0644 0:0 ok\n"},
			paths: []string{"/run"}},
		{name: "optional and missing: nothing mounted, env empty",
			df:    "RUN --mount=type=secret,id=nope --mount=type=secret,id=nope2,env=NOPE test ! -e /run/secrets/nope && test -z \"$NOPE\" && echo absent >/out",
			want:  map[string]string{"/out": "f 0644 0:0 absent\n"},
			paths: []string{"/run"}},
		{name: "required and missing",
			df:      "RUN --mount=type=secret,id=nope,required true",
			wantErr: []string{"Dockerfile:2", "secret nope: not found"}},
		{name: "required, and the build has no secrets",
			df: "RUN --mount=type=secret,id=tok,required=true true", store: builder.SecretStore(nil),
			wantErr: []string{"Dockerfile:2", "secret tok: not found (this build was given no secrets)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s builder.SecretStore = store
			if strings.Contains(tt.name, "has no secrets") {
				s = tt.store
			}
			res, err := buildMounts(t, base, "FROM BUSYBOX\n"+tt.df+"\n", s, nil)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("build succeeded, want an error")
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q, want it to contain %q", err, want)
					}
				}
				if strings.Contains(err.Error(), secretValue) {
					t.Errorf("error %q holds the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			wantFiles(t, files(t, res.Image), tt.want)
			requireNoTrace(t, res.Image, tt.paths...)
		})
	}
}

// TestRunMountSecretCacheKey checks the step cache: a RUN whose secret's value changed
// is taken from the cache (BuildKit keys the id, never the value), one whose mount
// names another secret, or another target, runs again.
func TestRunMountSecretCacheKey(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a": "a"})
	df := func(mount string) string {
		return "FROM BUSYBOX\nRUN --mount=type=secret," + mount + " cat /run/secrets/* /s 2>/dev/null | wc -c >/n\n"
	}
	with := func(s fakeSecrets) func(*builder.Request) {
		return func(r *builder.Request) { r.Secrets = s }
	}
	first := cw.build(t, df("id=a"), with(fakeSecrets{"a": "one", "b": "two"}))
	if first.running != 1 {
		t.Fatalf("first build ran %d RUNs, want 1", first.running)
	}
	for _, tc := range []struct {
		name    string
		mount   string
		secrets fakeSecrets
		wantRun bool
	}{
		{name: "value changed", mount: "id=a", secrets: fakeSecrets{"a": "another value"}},
		{name: "id changed", mount: "id=b", secrets: fakeSecrets{"a": "one", "b": "two"}, wantRun: true},
		{name: "target changed", mount: "id=a,target=/s", secrets: fakeSecrets{"a": "one"}, wantRun: true},
		{name: "required added", mount: "id=a,required", secrets: fakeSecrets{"a": "one"}, wantRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := cw.build(t, df(tc.mount), with(tc.secrets))
			if ran := run.running > 0; ran != tc.wantRun {
				t.Errorf("RUN ran: %t, want %t (hits %q, misses %q)", ran, tc.wantRun, run.hits, run.misses)
			}
			for _, e := range run.events {
				if strings.Contains(fmt.Sprint(e), "another value") || strings.Contains(fmt.Sprint(e), "two") && !strings.Contains(fmt.Sprint(e), "two ") {
					t.Errorf("event %#v holds a secret's value", e)
				}
			}
		})
	}
}

// TestRunMountSSH runs chroot builds with RUN --mount=type=ssh against a fake agent:
// the RUN connects to $SSH_AUTH_SOCK (BuildKit's default target) and talks to the
// agent through kiln's proxy, both ways; a missing required agent fails naming the
// line with BuildKit's words; no image holds the socket or its directories.
func TestRunMountSSH(t *testing.T) {
	w := newWorld(t)
	debian := testworld.Debian(t)
	base := map[string]string{"BUSYBOX": w.busybox, "DEBIAN": debian}
	const talk = `perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK}) or die "connect: $!"; ` +
		`print $s "hello agent"; shutdown($s, 1); print scalar <$s>' >/out`
	tests := []struct {
		name     string
		df       string
		gone     bool
		want     map[string]string
		wantSent []string
		wantWarn string
		paths    []string
		wantErr  []string
	}{
		{name: "default agent at the default target", df: "FROM DEBIAN\nRUN --mount=type=ssh " + talk,
			want: map[string]string{"/out": "f 0644 0:0 from the agent"}, wantSent: []string{"hello agent"},
			paths: []string{"/run/buildkit"}},
		{name: "agent gone during the RUN", df: "FROM DEBIAN\nRUN --mount=type=ssh " + talk + "; true", gone: true,
			want: map[string]string{"/out": "f 0644 0:0 "}, paths: []string{"/run/buildkit"},
			wantWarn: `The RUN could not reach its SSH agent: SSH agent "default": the agent is gone`},
		{name: "target, mode and owner", df: "FROM BUSYBOX\nRUN --mount=type=ssh,target=/tmp/agent,mode=0660,uid=1000 " +
			`test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" >/out && stat -c '%a %u:%g' /tmp/agent >>/out`,
			want:  map[string]string{"/out": "f 0644 0:0 /tmp/agent\n660 1000:0\n"},
			paths: []string{"/tmp"}},
		{name: "optional and missing", df: "FROM BUSYBOX\nRUN --mount=type=ssh,id=other test ! -e /run/buildkit/ssh_agent.0 && echo absent >/out",
			want: map[string]string{"/out": "f 0644 0:0 absent\n"}, paths: []string{"/run"}},
		{name: "required and missing", df: "FROM BUSYBOX\nRUN --mount=type=ssh,id=other,required true",
			wantErr: []string{"Dockerfile:2", `no SSH key "other" forwarded from the client`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			agents := newFakeAgents(t, "from the agent")
			agents.gone = tt.gone
			res, warnings, err := buildMountsWarnings(t, base, tt.df+"\n", nil, agents)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("build succeeded, want an error")
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q, want it to contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			wantFiles(t, files(t, res.Image), tt.want)
			requireNoTrace(t, res.Image, tt.paths...)
			if got := strings.Join(warnings, "\n"); got != tt.wantWarn {
				t.Errorf("warnings %q, want %q", got, tt.wantWarn)
			}
			if tt.wantSent != nil {
				agents.mu.Lock()
				got := agents.got
				agents.mu.Unlock()
				if fmt.Sprint(got) != fmt.Sprint(tt.wantSent) {
					t.Errorf("the agent got %q, want %q", got, tt.wantSent)
				}
			}
		})
	}
}
