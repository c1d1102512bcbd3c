package testworld

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// GitSSHServer is a git remote served over SSH on loopback by GitSSH.
type GitSSHServer struct {
	// URL is ssh://git@127.0.0.1:PORT/repo.git.
	URL string
	// Addr is 127.0.0.1:PORT.
	Addr string
	// KnownHosts is the known_hosts line of the server's host key.
	KnownHosts string
}

// NewSSHKey returns a fresh ed25519 key for an SSH client or agent.
func NewSSHKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// GitSSH serves a bare clone of the repository in work over SSH on a free loopback
// port until the test ends: a client authenticating with one of the authorized keys
// (any user name) may run `git-upload-pack 'repo.git'` (or '/repo.git'), which runs
// the real git-upload-pack on the bare clone; everything else is refused. Tests skip
// when git is not installed.
func GitSSH(t testing.TB, work string, authorized ...ed25519.PrivateKey) *GitSSHServer {
	t.Helper()
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack is not installed")
	}
	bare := filepath.Join(t.TempDir(), "repo.git")
	Git(t, work, "clone", "-q", "--bare", work, bare)
	allowed := map[string]bool{}
	for _, k := range authorized {
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		allowed[string(pub.Marshal())] = true
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if allowed[string(key.Marshal())] {
			return nil, nil
		}
		return nil, errors.New("unknown public key")
	}}
	hostKey, err := ssh.NewSignerFromKey(NewSSHKey(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, l, func(c net.Conn) { serveGitSSH(c, cfg, bare) })
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	return &GitSSHServer{
		URL:        "ssh://git@" + addr + "/repo.git",
		Addr:       addr,
		KnownHosts: fmt.Sprintf("[127.0.0.1]:%s %s", port, ssh.MarshalAuthorizedKey(hostKey.PublicKey())),
	}
}

// serveGitSSH serves one SSH connection's sessions, each at most one upload-pack.
func serveGitSSH(c net.Conn, cfg *ssh.ServerConfig, bare string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveGitSession(ch, creqs, bare)
	}
}

// serveGitSession answers a session's exec of git-upload-pack for repo.git.
func serveGitSession(ch ssh.Channel, reqs <-chan *ssh.Request, bare string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(req.Type == "env", nil)
			continue
		}
		cmdline := string(req.Payload[4:])
		prog, arg, _ := strings.Cut(cmdline, " ")
		repo := strings.TrimPrefix(strings.Trim(arg, "'"), "/")
		if prog != "git-upload-pack" || repo != "repo.git" {
			req.Reply(false, nil)
			fmt.Fprintf(ch.Stderr(), "refused: %s\n", cmdline)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command("git-upload-pack", bare)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() > 0 {
				status = uint32(ee.ExitCode())
			}
		}
		var payload [4]byte
		binary.BigEndian.PutUint32(payload[:], status)
		ch.SendRequest("exit-status", false, payload[:])
		return
	}
}

// SSHAgent starts an SSH agent holding keys until the test ends and returns its
// socket: the real ssh-agent when it is installed, else an in-memory agent.
func SSHAgent(t testing.TB, keys ...ed25519.PrivateKey) string {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "agent.sock")
	if path, err := exec.LookPath("ssh-agent"); err == nil {
		Start(t, exec.Command(path, "-D", "-a", sock))
	} else {
		serveKeyring(t, sock)
	}
	// The socket exists a moment before ssh-agent listens on it: wait for a connection.
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SSH agent did not listen on %s: %v", sock, err)
		}
	}
	defer c.Close()
	ag := agent.NewClient(c)
	for _, k := range keys {
		if err := ag.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatalf("adding a key to the agent: %v", err)
		}
	}
	return sock
}

// serveKeyring serves an in-memory agent on sock until the test ends.
func serveKeyring(t testing.TB, sock string) {
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	serveConns(t, l, func(c net.Conn) {
		defer c.Close()
		agent.ServeAgent(keyring, c) //nolint:errcheck // ends with the client
	})
}

// serveConns hands every connection l accepts to serve, each in its own goroutine,
// until the test ends: then l is closed and every handler waited for.
func serveConns(t testing.TB, l net.Listener, serve func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
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
				serve(c)
			}()
		}
	}()
}

// shortTempDir is a temporary directory with a path short enough for a unix socket.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "kiln-ssh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
