package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/kiln-build/kiln/builder"
)

// TestSecretFlags parses --secret as buildx does and reads each secret from where it
// says: a file, a variable, or (id alone) the variable of that name if set, else the
// file of that name.
func TestSecretFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("from the file"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSecretSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOKEN": "from the variable", "tok2": "named by the id"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		spec, id, want, wantErr string
	}{
		{spec: "id=a,src=" + file, id: "a", want: "from the file"},
		{spec: "id=a,source=" + file, id: "a", want: "from the file"},
		{spec: "id=a,type=file,src=" + file, id: "a", want: "from the file"},
		{spec: "id=a,env=TOKEN", id: "a", want: "from the variable"},
		{spec: "id=a,type=env,src=TOKEN", id: "a", want: "from the variable"},
		{spec: "id=a,env=UNSET", id: "a", want: ""},
		{spec: "id=tok2", id: "tok2", want: "named by the id"},
		{spec: "id=" + file, id: file, want: "from the file"},
		{spec: "src=" + file, wantErr: "secret missing ID"},
		{spec: "id=a,type=ssh", wantErr: `unsupported secret type "ssh"`},
		{spec: "id=a,bogus=1", wantErr: "unexpected key 'bogus' in 'bogus=1'"},
		{spec: "id=a,src", wantErr: "invalid field 'src' must be a key=value pair"},
		{spec: "id=a,src=" + dir, wantErr: "is not a regular file"},
		{spec: "id=a,src=" + big, wantErr: "secret a too big. max size 500KB"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			store, err := parseSecretFlags([]string{tt.spec}, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "--secret ") {
					t.Fatalf("error %v, want one naming --secret with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := store.GetSecret(context.Background(), tt.id)
			if err != nil || string(got) != tt.want {
				t.Errorf("GetSecret(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
			}
			if _, err := store.GetSecret(context.Background(), "other"); !errors.Is(err, builder.ErrSecretNotFound) {
				t.Errorf("GetSecret of an unknown id: %v, want ErrSecretNotFound", err)
			}
		})
	}
	if store, err := parseSecretFlags(nil, lookup); store != nil || err != nil {
		t.Errorf("no --secret: %v, %v; want no store (a nil interface)", store, err)
	}
}

// TestSSHFlags parses --ssh as buildx does: default (at $SSH_AUTH_SOCK), ID=socket,
// ID=key files (served by an in-memory agent that lists them).
func TestSSHFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	serveFakeAgent(t, sock, "socket agent")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SSH_AUTH_SOCK": sock}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		specs   []string
		id      string
		want    string // "socket agent", or "keys N" for an in-memory agent
		wantErr string
	}{
		{specs: []string{"default"}, id: "default", want: "socket agent"},
		{specs: []string{"default=" + sock}, id: "default", want: "socket agent"},
		{specs: []string{"git=" + sock}, id: "git", want: "socket agent"},
		{specs: []string{"default=" + key}, id: "default", want: "keys 1"},
		{specs: []string{"=" + sock}, wantErr: "the id is empty"},
		{specs: []string{"a=" + sock, "a=" + sock}, wantErr: `duplicate agent ID "a"`},
		{specs: []string{"a=" + sock + "," + sock}, wantErr: "only single socket allowed"},
		{specs: []string{"a=" + filepath.Join(dir, "missing")}, wantErr: "no such file or directory"},
		{specs: []string{"a=" + filepath.Join(dir, "agent.sock") + "x"}, wantErr: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.specs, " "), func(t *testing.T) {
			t.Parallel()
			agents, err := parseSSHFlags(tt.specs, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "--ssh ") {
					t.Fatalf("error %v, want one naming --ssh with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := agents.CheckSSH(context.Background(), tt.id); err != nil {
				t.Fatalf("CheckSSH(%q): %v", tt.id, err)
			}
			if err := agents.CheckSSH(context.Background(), "other"); !errors.Is(err, builder.ErrSSHNotFound) {
				t.Errorf("CheckSSH of an unknown id: %v, want ErrSSHNotFound", err)
			}
			c, err := agents.DialSSH(context.Background(), tt.id)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := ""
			if strings.HasPrefix(tt.want, "keys") {
				keys, err := agent.NewClient(c).List()
				if err != nil {
					t.Fatal(err)
				}
				got = "keys " + string(rune('0'+len(keys)))
			} else {
				data, _ := io.ReadAll(c)
				got = string(data)
			}
			if got != tt.want {
				t.Errorf("the agent answered %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPlanBuildMountFlags checks that kiln build hands --secret and --ssh to the
// build's Request, and leaves both nil without them.
func TestPlanBuildMountFlags(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	env := map[string]string{"TOKEN": "value"}
	f, _ := parseFlags(t, "-c", ctxDir, "--no-push", "--isolation=chroot", "--secret", "id=tok,env=TOKEN", "--ssh", "default="+sock)
	p, err := planBuild(context.Background(), f, fakeHost(t, false, env))
	if err != nil {
		t.Fatal(err)
	}
	defer p.req.Context.Close()
	if p.req.Secrets == nil || p.req.SSH == nil {
		t.Fatalf("Request.Secrets %v, Request.SSH %v: want both set", p.req.Secrets, p.req.SSH)
	}
	if v, err := p.req.Secrets.GetSecret(context.Background(), "tok"); err != nil || string(v) != "value" {
		t.Errorf("secret tok = %q, %v; want %q", v, err, "value")
	}
	if err := p.req.SSH.CheckSSH(context.Background(), "default"); err != nil {
		t.Errorf("CheckSSH(default): %v", err)
	}

	f, _ = parseFlags(t, "-c", ctxDir, "--no-push", "--isolation=chroot")
	p, err = planBuild(context.Background(), f, fakeHost(t, false, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer p.req.Context.Close()
	if p.req.Secrets != nil || p.req.SSH != nil {
		t.Errorf("without the flags: Request.Secrets %v, Request.SSH %v; want nil interfaces", p.req.Secrets, p.req.SSH)
	}
}

// serveFakeAgent listens on the unix socket sock until the test ends, answering every
// connection with reply: a stand-in for an SSH agent socket.
func serveFakeAgent(t *testing.T, sock, reply string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, reply)
			c.Close()
		}
	}()
}

// TestPlanBuildKnownHosts checks that --ssh-known-hosts, or else $SSH_KNOWN_HOSTS,
// reaches the build's Workspace.
func TestPlanBuildKnownHosts(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "flag", args: []string{"--ssh-known-hosts", "/etc/kh"}, env: map[string]string{"SSH_KNOWN_HOSTS": "/env/kh"}, want: "/etc/kh"},
		{name: "environment", env: map[string]string{"SSH_KNOWN_HOSTS": "/env/kh:/env/kh2"}, want: "/env/kh:/env/kh2"},
		{name: "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := parseFlags(t, append([]string{"-c", ctxDir, "--no-push", "--isolation=chroot"}, tc.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, false, tc.env))
			if err != nil {
				t.Fatal(err)
			}
			defer p.req.Context.Close()
			if got := p.workspace.SSHKnownHostsFile; got != tc.want {
				t.Errorf("Workspace.SSHKnownHostsFile = %q, want %q", got, tc.want)
			}
		})
	}
}
