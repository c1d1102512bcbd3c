package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/isolation"
)

// SecretStore supplies the secrets of RUN --mount=type=secret by id: kiln build's
// --secret flags, or the BuildKit session's secrets provider. Values never reach a
// layer, the image config, the history, an event or a cache key.
type SecretStore interface {
	// GetSecret returns the secret's value, or an error wrapping ErrSecretNotFound
	// when the store has no secret of that id.
	GetSecret(ctx context.Context, id string) ([]byte, error)
}

// ErrSecretNotFound is what a SecretStore's GetSecret wraps for an unknown id. A
// mount with required=true then fails the RUN; any other mount is left out, as in
// BuildKit.
var ErrSecretNotFound = errors.New("not found")

// SSHAgents supplies the SSH agents of RUN --mount=type=ssh by id ("default" unless
// the mount names one): a local agent socket (kiln build --ssh default=$SSH_AUTH_SOCK)
// or the BuildKit session's sshforward. The builder listens on a unix socket of its
// own for each such mount, shows it to the RUN at the mount's target, and proxies every
// connection the RUN opens to a connection from DialSSH.
type SSHAgents interface {
	// CheckSSH returns nil when an agent of that id can be dialled, an error wrapping
	// ErrSSHNotFound when there is none.
	CheckSSH(ctx context.Context, id string) error
	// DialSSH opens a connection to the agent of that id, speaking the SSH agent
	// protocol. It is called once per connection the RUN makes.
	DialSSH(ctx context.Context, id string) (net.Conn, error)
}

// ErrSSHNotFound is what SSHAgents' methods wrap for an unknown id.
var ErrSSHNotFound = errors.New("no SSH agent")

// secretTargetDir is where a secret mount without a target appears, as in BuildKit.
const secretTargetDir = "/run/secrets"

// runMount is one parsed RUN --mount of a type kiln implements.
type runMount struct {
	*instructions.Mount
	id     string // the secret or agent id, defaults applied
	target string // absolute image path; "" for a secret given only as env
}

// runMounts returns the RUN's mounts with their ids and targets, or an error for a
// type kiln does not implement. workdir resolves relative targets, as in BuildKit.
func runMounts(c *instructions.RunCommand, workdir string) ([]runMount, error) {
	var out []runMount
	ssh := 0
	for _, m := range instructions.GetMounts(c) {
		rm := runMount{Mount: m, id: m.CacheID, target: m.Target}
		switch m.Type {
		case instructions.MountTypeSecret:
			if m.Source != "" {
				rm.id = m.Source
			}
			if rm.id == "" {
				rm.id = path.Base(m.Target)
			}
			if rm.target == "" && m.Env == nil {
				rm.target = path.Join(secretTargetDir, path.Base(rm.id))
			}
		case instructions.MountTypeSSH:
			if m.Source != "" {
				return nil, errors.New("ssh does not support source")
			}
			if rm.id == "" {
				rm.id = "default"
			}
			if rm.target == "" {
				rm.target = "/run/buildkit/ssh_agent." + strconv.Itoa(ssh)
			}
			ssh++
		case instructions.MountTypeCache:
			if rm.target == "" {
				return nil, errors.New("mount target is required for a cache mount")
			}
			if rm.id == "" {
				rm.id = path.Clean(path.Join("/", workdir, m.Target))
			}
		case instructions.MountTypeBind, instructions.MountTypeTmpfs:
			if rm.target == "" {
				return nil, fmt.Errorf("mount target is required for a %s mount", m.Type)
			}
		default:
			return nil, fmt.Errorf("RUN --mount=type=%s: %w", m.Type, ErrUnsupported)
		}
		if rm.target != "" {
			if !path.IsAbs(rm.target) {
				rm.target = path.Join("/", workdir, rm.target)
			}
			rm.target = path.Clean(rm.target)
			if rm.target == "/" {
				return nil, fmt.Errorf("invalid mount target %q", m.Target)
			}
		}
		out = append(out, rm)
	}
	return out, nil
}

// mountKey describes a mount for the step's cache key: its type, id, target and
// options, never a secret's value.
func (m runMount) mountKey() string {
	opt := func(p *uint64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatUint(*p, 10)
	}
	switch m.Type {
	case instructions.MountTypeCache, instructions.MountTypeBind, instructions.MountTypeTmpfs:
		return fmt.Sprintf("%s id=%q target=%q from=%q source=%q sharing=%q ro=%t size=%d mode=%s uid=%s gid=%s",
			m.Type, m.id, m.target, m.From, m.Source, m.CacheSharing, m.ReadOnly, m.SizeLimit, opt(m.Mode), opt(m.UID), opt(m.GID))
	}
	env := "-"
	if m.Env != nil {
		env = "=" + *m.Env
	}
	return fmt.Sprintf("%s id=%q target=%q env=%s required=%t mode=%s uid=%s gid=%s",
		m.Type, m.id, m.target, env, m.Required, opt(m.Mode), opt(m.UID), opt(m.GID))
}

// preparedMounts is what a RUN's mounts add to its process, and their teardown.
type preparedMounts struct {
	mounts  []isolation.Mount
	env     []string // KEY=VALUE added to the RUN's environment only
	closers []func()

	mu      sync.Mutex
	dialErr error // the first failure to reach an agent, reported after the RUN
}

// agentError returns the first failure to reach an agent during the RUN, if any.
func (p *preparedMounts) agentError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialErr
}

// close stops the agent proxies and removes the secrets' files. It may be called
// more than once.
func (p *preparedMounts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// prepareMounts fetches the secrets and starts the agent proxies of a RUN's mounts,
// in a private directory under dir (outside the root).
func (s *stage) prepareMounts(ctx context.Context, mounts []runMount, env []string, dir string) (*preparedMounts, error) {
	p := &preparedMounts{}
	if len(mounts) == 0 {
		return p, nil
	}
	scratch, err := os.MkdirTemp(dir, "mounts-")
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { _ = os.RemoveAll(scratch) })
	sshSock := ""
	for i, m := range mounts {
		var err error
		switch m.Type {
		case instructions.MountTypeSecret:
			err = s.prepareSecret(ctx, p, m, filepath.Join(scratch, "secret."+strconv.Itoa(i)))
		case instructions.MountTypeSSH:
			if sshSock == "" {
				sshSock = m.target
			}
			err = s.prepareSSH(ctx, p, m, filepath.Join(scratch, "ssh."+strconv.Itoa(i)))
		default:
			err = s.prepareDirMount(ctx, p, m, filepath.Join(scratch, "dir."+strconv.Itoa(i)))
		}
		if err != nil {
			p.close()
			return nil, err
		}
	}
	if _, ok := getEnv(env, "SSH_AUTH_SOCK"); sshSock != "" && !ok {
		p.env = append(p.env, "SSH_AUTH_SOCK="+sshSock)
	}
	return p, nil
}

// prepareSecret writes the secret to file for a mount (mode 0400 and root's unless
// the mount says otherwise) and, with env=, adds it to the environment.
func (s *stage) prepareSecret(ctx context.Context, p *preparedMounts, m runMount, file string) error {
	var value []byte
	err := ErrSecretNotFound
	if s.b.req.Secrets != nil {
		value, err = s.b.req.Secrets.GetSecret(ctx, m.id)
	}
	switch {
	case errors.Is(err, ErrSecretNotFound) && !m.Required:
		// BuildKit mounts nothing, and sets an env form to the empty string.
		if m.Env != nil {
			p.env = append(p.env, *m.Env+"=")
		}
		return nil
	case errors.Is(err, ErrSecretNotFound) && s.b.req.Secrets == nil:
		return fmt.Errorf("secret %s: %w (this build was given no secrets)", m.id, ErrSecretNotFound)
	case errors.Is(err, ErrSecretNotFound):
		return fmt.Errorf("secret %s: %w", m.id, ErrSecretNotFound) // BuildKit's words
	case err != nil:
		return fmt.Errorf("secret %s: %w", m.id, err)
	}
	if m.Env != nil {
		p.env = append(p.env, *m.Env+"="+string(value))
	}
	if m.target == "" {
		return nil
	}
	if err := writeMountFile(file, value, modeOf(m.Mount, 0o400), m.UID, m.GID); err != nil {
		return fmt.Errorf("secret %s: %w", m.id, err)
	}
	p.mounts = append(p.mounts, isolation.Mount{Source: file, Target: m.target, ReadOnly: true})
	return nil
}

// prepareSSH listens on sock for a mount's agent and proxies what the RUN connects.
func (s *stage) prepareSSH(ctx context.Context, p *preparedMounts, m runMount, sock string) error {
	err := ErrSSHNotFound
	if s.b.req.SSH != nil {
		err = s.b.req.SSH.CheckSSH(ctx, m.id)
	}
	switch {
	case errors.Is(err, ErrSSHNotFound) && !m.Required:
		return nil
	case errors.Is(err, ErrSSHNotFound):
		// BuildKit's words, with the sentinel for errors.Is.
		return fmt.Errorf("no SSH key %q forwarded from the client (%w)", m.id, ErrSSHNotFound)
	case err != nil:
		return fmt.Errorf("SSH agent %q: %w", m.id, err)
	}
	l, err := listenUnix(sock)
	if err != nil {
		return fmt.Errorf("SSH agent %q: %w", m.id, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			open[c] = true
		} else {
			delete(open, c)
		}
	}
	p.closers = append(p.closers, func() {
		cancel()
		l.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	if err := chownMode(sock, modeOf(m.Mount, 0o600), m.UID, m.GID); err != nil {
		return fmt.Errorf("SSH agent %q: %w", m.id, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer track(c, false)
				if err := s.proxySSH(ctx, c, m.id); err != nil {
					p.mu.Lock()
					if p.dialErr == nil {
						p.dialErr = err
					}
					p.mu.Unlock()
				}
			}()
		}
	}()
	p.mounts = append(p.mounts, isolation.Mount{Source: sock, Target: m.target})
	return nil
}

// listenUnix listens on a unix socket at path, however long path is: bind(2) takes
// at most 107 bytes, which a state directory's path can exceed, so the socket is bound
// through a descriptor of its directory (/proc/self/fd/N/name).
func listenUnix(path string) (net.Listener, error) {
	if len(path) < 100 {
		return net.Listen("unix", path)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return net.Listen("unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)))
}

// proxySSH copies between a RUN's connection and a new one to the agent until either
// side closes. It returns only a failure to reach the agent.
func (s *stage) proxySSH(ctx context.Context, c net.Conn, id string) error {
	defer c.Close()
	agent, err := s.b.req.SSH.DialSSH(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the RUN is over
		}
		return fmt.Errorf("SSH agent %q: %w", id, err)
	}
	defer agent.Close()
	stop := context.AfterFunc(ctx, func() { agent.Close(); c.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(agent, c)
		closeWrite(agent)
		close(done)
	}()
	_, _ = io.Copy(c, agent)
	closeWrite(c)
	<-done
	return nil
}

// closeWrite half-closes a connection that supports it, so the other side reads EOF.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func modeOf(m *instructions.Mount, def os.FileMode) os.FileMode {
	if m.Mode != nil {
		return os.FileMode(*m.Mode) & os.ModePerm
	}
	return def
}

// writeMountFile writes a mount's source file with its mode and owner (root unless
// uid or gid say otherwise).
func writeMountFile(file string, data []byte, mode os.FileMode, uid, gid *uint64) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return chownMode(file, mode, uid, gid)
}

func chownMode(file string, mode os.FileMode, uid, gid *uint64) error {
	u, g := 0, 0
	if uid != nil {
		u = int(*uid)
	}
	if gid != nil {
		g = int(*gid)
	}
	// Skipped when the file is ours already: an unprivileged in-place kiln cannot chown.
	if u != os.Geteuid() || g != os.Getegid() {
		if err := os.Lchown(file, u, g); err != nil {
			return err
		}
	}
	return os.Chmod(file, mode)
}
