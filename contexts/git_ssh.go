package contexts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrNoSSHAgent is what FromGit wraps when an ssh remote must be cloned and no SSH
// agent was given to authenticate with.
var ErrNoSSHAgent = errors.New("no SSH agent to authenticate to the ssh remote")

// IsSSHGitURL reports whether spec (a git context or ADD source, with or without its
// #fragment) is cloned over ssh: ssh://… or scp-style user@host:path.
func IsSSHGitURL(spec string) bool {
	base, _, _ := strings.Cut(spec, "#")
	if strings.HasPrefix(base, "github.com/") || strings.HasPrefix(base, "/") {
		return false
	}
	ep, err := transport.NewEndpoint(base)
	return err == nil && ep.Protocol == "ssh"
}

// gitSSHAuth is the ssh authentication of a clone of rawURL: the keys of g's agent,
// offered as the URL's user (the local user's name when it names none, as ssh does),
// with the host key checked against g.SSHKnownHostsFile when one is given. done
// closes the agent connection.
func gitSSHAuth(ctx context.Context, rawURL string, g GitOptions) (_ transport.AuthMethod, done func(), _ error) {
	if g.SSHAgent == nil {
		return nil, nil, ErrNoSSHAgent
	}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, nil, err
	}
	name := ep.User
	if name == "" {
		name = "root"
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	conn, err := g.SSHAgent(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("SSH agent: %w", err)
	}
	ag := agent.NewClient(conn)
	auth := &gitssh.PublicKeysCallback{User: name, Callback: func() ([]ssh.Signer, error) {
		signers, err := ag.Signers()
		if err != nil {
			return nil, fmt.Errorf("SSH agent: %w", err)
		}
		return signers, nil
	}}
	if g.SSHKnownHostsFile == "" {
		// BuildKit's ADD accepts the host key its frontend scanned a moment before
		// (or, when the scan failed, any key): there is nothing to check against.
		auth.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // see SSHKnownHostsFile
	} else {
		db, err := gitssh.NewKnownHostsDb(strings.Split(g.SSHKnownHostsFile, ":")...)
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("known hosts: %w", err)
		}
		auth.HostKeyCallback = db.HostKeyCallback()
		auth.HostKeyAlgorithms = db.HostKeyAlgorithms(sshDialAddress(ep))
	}
	return auth, func() { conn.Close() }, nil
}

// sshDialAddress is the host:port an ssh remote is dialled at.
func sshDialAddress(ep *transport.Endpoint) string {
	port := ep.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(ep.Host, strconv.Itoa(port))
}
