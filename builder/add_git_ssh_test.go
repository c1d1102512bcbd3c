package builder_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/test/testworld"
)

// sockAgents is an SSHAgents whose only agent, "default", is a real agent socket.
type sockAgents struct{ sock string }

func (a sockAgents) CheckSSH(_ context.Context, id string) error {
	if id != "default" {
		return fmt.Errorf("agent %q: %w", id, builder.ErrSSHNotFound)
	}
	return nil
}

func (a sockAgents) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	if err := a.CheckSSH(ctx, id); err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", a.sock)
}

// ADD of an ssh git remote authenticates with the build's default SSH agent, as in
// BuildKit: never the builder's own SSH_AUTH_SOCK, and no agent is an error naming the
// line.
func TestAddGitSSH(t *testing.T) {
	w := newWorld(t)
	work := t.TempDir()
	testworld.Git(t, work, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "a.txt"), []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	testworld.Git(t, work, "add", ".")
	testworld.Git(t, work, "commit", "-q", "-m", "one")
	testworld.Git(t, work, "checkout", "-q", "-b", "feature")
	if err := os.WriteFile(filepath.Join(work, "a.txt"), []byte("F"), 0o644); err != nil {
		t.Fatal(err)
	}
	testworld.Git(t, work, "commit", "-q", "-am", "feature")
	testworld.Git(t, work, "checkout", "-q", "main")
	key, other := testworld.NewSSHKey(t), testworld.NewSSHKey(t)
	srv := testworld.GitSSH(t, work, key)
	good := sockAgents{testworld.SSHAgent(t, key)}
	// The builder's own agent holds the right key: it must never be used.
	t.Setenv("SSH_AUTH_SOCK", good.sock)
	hosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(hosts, []byte(srv.KnownHosts), 0o644); err != nil {
		t.Fatal(err)
	}

	img, _ := mustBuild(t, w, buildCase{
		dockerfile: "FROM BUSYBOX\nADD " + srv.URL + "#feature /g/\nADD --keep-git-dir=true " + srv.URL + " /k/\n",
		files:      map[string]string{"x": "x"},
		ssh:        good,
		knownHosts: hosts,
	})
	got := files(t, img)
	wantFiles(t, got, map[string]string{
		"/g/a.txt": "f 0644 0:0 F",
		"/g/.git":  "",
		"/k/a.txt": "f 0644 0:0 A",
	})
	if _, ok := got["/k/.git/HEAD"]; !ok {
		t.Errorf("ADD --keep-git-dir=true: /k/.git/HEAD missing")
	}

	otherHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(otherHosts, []byte(strings.Replace(srv.KnownHosts, "127.0.0.1", "127.0.0.2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		src        string
		ssh        builder.SSHAgents
		knownHosts string
		want       string
	}{
		{"wrong key", srv.URL, sockAgents{testworld.SSHAgent(t, other)}, "", "unable to authenticate"},
		{"no agent", srv.URL, nil, "", `no SSH key "default" forwarded from the client`},
		// BuildKit takes any user@host:path for an scp-style ssh address.
		{"no agent, scp-style", "deploy@127.0.0.1:repo.git#main", nil, "", `no SSH key "default" forwarded from the client`},
		{"unknown host", srv.URL, good, otherHosts, "key is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\nADD " + tc.src + " /g/\n",
				files: map[string]string{"x": "x"}, ssh: tc.ssh, knownHosts: tc.knownHosts})
			var ie *builder.InstructionError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ie) || ie.Line != 2 {
				t.Errorf("error %v, want %q on line 2", err, tc.want)
			}
		})
	}
}
