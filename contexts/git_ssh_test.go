package contexts

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// A clone over ssh authenticates with the given agent's keys only (never the
// process's SSH_AUTH_SOCK), and checks the host key when a known_hosts file is given.
func TestFromGitSSH(t *testing.T) {
	work, repo := newGitRepo(t, func(dir string) { writeFile(t, filepath.Join(dir, "a.txt"), "A", 0o644) })
	key, other := testworld.NewSSHKey(t), testworld.NewSSHKey(t)
	srv := testworld.GitSSH(t, work, key)
	good, wrong := testworld.SSHAgent(t, key), testworld.SSHAgent(t, other)
	// The process's own agent holds the right key: it must not be used.
	t.Setenv("SSH_AUTH_SOCK", good)
	dial := func(sock string) func(context.Context) (net.Conn, error) {
		return func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	hosts := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, hosts, srv.KnownHosts, 0o644)
	otherHosts := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, otherHosts, strings.Replace(srv.KnownHosts, "127.0.0.1", "127.0.0.2", 1), 0o644)
	_, port, _ := net.SplitHostPort(srv.Addr)
	scp := "git@127.0.0.1:repo.git" // scp-style has no port: only checked to be refused without an agent

	cases := []struct {
		name    string
		spec    string
		opts    GitOptions
		version string // the cloned version file; "" when the clone fails
		wantErr string
	}{
		{name: "agent", spec: srv.URL, opts: GitOptions{SSHAgent: dial(good)}, version: "two\n"},
		{name: "branch and known host", spec: srv.URL + "#feature", opts: GitOptions{SSHAgent: dial(good), SSHKnownHostsFile: hosts}, version: "feature\n"},
		{name: "commit", spec: "ssh://git@127.0.0.1:" + port + "/repo.git#main#" + repo.first, opts: GitOptions{SSHAgent: dial(good)}, version: "one\n"},
		{name: "wrong key", spec: srv.URL, opts: GitOptions{SSHAgent: dial(wrong)}, wantErr: "unable to authenticate"},
		{name: "unknown host", spec: srv.URL, opts: GitOptions{SSHAgent: dial(good), SSHKnownHostsFile: otherHosts}, wantErr: "key is unknown"},
		{name: "no agent", spec: srv.URL, wantErr: ErrNoSSHAgent.Error()},
		{name: "no agent, scp-style", spec: scp, wantErr: ErrNoSSHAgent.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			c, err := FromGit(context.Background(), tc.spec, dir, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromGit(%s) = %v, want an error containing %q", tc.spec, err, tc.wantErr)
				}
				if tc.opts.SSHAgent == nil && !errors.Is(err, ErrNoSSHAgent) {
					t.Errorf("error %v does not wrap ErrNoSSHAgent", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromGit(%s): %v", tc.spec, err)
			}
			got, err := os.ReadFile(filepath.Join(c.Dir, "version"))
			if err != nil || string(got) != tc.version {
				t.Errorf("version = %q, %v; want %q", got, err, tc.version)
			}
		})
	}
}

func TestIsSSHGitURL(t *testing.T) {
	for spec, want := range map[string]bool{
		"git@github.com:moby/buildkit.git":          true,
		"ssh://git@127.0.0.1:2222/repo.git#main":    true,
		"user@host:path/repo.git#v1:sub":            true,
		"https://github.com/moby/buildkit.git#v0.1": false,
		"git://127.0.0.1/repo.git":                  false,
		"github.com/moby/buildkit":                  false,
		"/local/path":                               false,
	} {
		if got := IsSSHGitURL(spec); got != want {
			t.Errorf("IsSSHGitURL(%q) = %v, want %v", spec, got, want)
		}
	}
}
