package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/tonistiigi/go-csvvalue"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/kiln-build/kiln/builder"
)

// maxSecretSize is the largest secret --secret takes, BuildKit's limit.
const maxSecretSize = 500 * 1024

// secretSource is where one --secret's value comes from: a file or an environment
// variable, read when a RUN mounts it.
type secretSource struct {
	file, env string
}

// secretFlags is the SecretStore of kiln build's --secret flags.
type secretFlags struct {
	sources   map[string]secretSource
	lookupEnv func(string) (string, bool)
}

// parseSecretFlags parses --secret values as buildx does: id=ID[,type=file|env]
// [,src=PATH|source=PATH][,env=VAR]. Without src or env, an environment variable
// named ID is used when set, else the file ID. Files are checked now, read when used.
func parseSecretFlags(specs []string, lookupEnv func(string) (string, bool)) (builder.SecretStore, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	st := &secretFlags{sources: map[string]secretSource{}, lookupEnv: lookupEnv}
	for _, spec := range specs {
		id, src, err := parseSecretFlag(spec, lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("--secret %q: %w; give id=ID,src=PATH or id=ID,env=VARIABLE", spec, err)
		}
		st.sources[id] = src
	}
	return st, nil
}

func parseSecretFlag(spec string, lookupEnv func(string) (string, bool)) (string, secretSource, error) {
	fields, err := csvvalue.Fields(spec, nil)
	if err != nil {
		return "", secretSource{}, fmt.Errorf("not comma-separated fields: %w", err)
	}
	var id, typ string
	var src secretSource
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return "", secretSource{}, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
		}
		switch strings.ToLower(key) {
		case "type":
			if value != "file" && value != "env" {
				return "", secretSource{}, fmt.Errorf("unsupported secret type %q", value)
			}
			typ = value
		case "id":
			id = value
		case "source", "src":
			src.file = value
		case "env":
			src.env = value
		default:
			return "", secretSource{}, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if typ == "env" && src.env == "" {
		src.env, src.file = src.file, ""
	}
	if id == "" {
		return "", secretSource{}, errors.New("secret missing ID")
	}
	if src.env == "" && src.file == "" {
		if _, ok := lookupEnv(id); ok {
			src.env = id
		} else {
			src.file = id
		}
	}
	if src.file != "" {
		fi, err := os.Stat(src.file)
		if err != nil {
			return "", secretSource{}, err
		}
		if !fi.Mode().IsRegular() {
			return "", secretSource{}, fmt.Errorf("%s is not a regular file", src.file)
		}
		if fi.Size() > maxSecretSize {
			return "", secretSource{}, fmt.Errorf("secret %s too big. max size 500KB", id)
		}
	}
	return id, src, nil
}

func (s *secretFlags) GetSecret(_ context.Context, id string) ([]byte, error) {
	src, ok := s.sources[id]
	if !ok {
		return nil, builder.ErrSecretNotFound
	}
	if src.env != "" {
		v, _ := s.lookupEnv(src.env) // unset reads as empty, as in buildx
		return []byte(v), nil
	}
	return os.ReadFile(src.file)
}

// sshFlags is the SSHAgents of kiln build's --ssh flags: each id is an agent socket
// or an agent kiln keeps in memory for the given private keys.
type sshFlags struct {
	agents map[string]func(ctx context.Context) (net.Conn, error)
}

// parseSSHFlags parses --ssh values as buildx does: ID[=SOCKET|KEY[,KEY...]]; the
// default id with no path is $SSH_AUTH_SOCK.
func parseSSHFlags(specs []string, lookupEnv func(string) (string, bool)) (builder.SSHAgents, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	st := &sshFlags{agents: map[string]func(context.Context) (net.Conn, error){}}
	for _, spec := range specs {
		id, paths, _ := strings.Cut(spec, "=")
		if id == "" {
			return nil, fmt.Errorf("--ssh %q: the id is empty; give default, default=/path/to/agent.sock or ID=/path/to/key", spec)
		}
		if _, dup := st.agents[id]; dup {
			return nil, fmt.Errorf("--ssh %q: duplicate agent ID %q", spec, id)
		}
		var list []string
		if paths != "" {
			list = strings.Split(paths, ",")
		} else if sock, ok := lookupEnv("SSH_AUTH_SOCK"); ok && sock != "" {
			list = []string{sock}
		} else {
			return nil, fmt.Errorf("--ssh %q: no path given and SSH_AUTH_SOCK is not set; give %s=/path/to/agent.sock or %s=/path/to/key", spec, id, id)
		}
		dial, err := agentDialer(list)
		if err != nil {
			return nil, fmt.Errorf("--ssh %q: %w", spec, err)
		}
		st.agents[id] = dial
	}
	return st, nil
}

// agentDialer returns how to reach the agent of paths: one socket, or private keys
// (unencrypted) served by an in-memory agent.
func agentDialer(paths []string) (func(context.Context) (net.Conn, error), error) {
	fi, err := os.Stat(paths[0])
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSocket != 0 {
		if len(paths) > 1 {
			return nil, errors.New("only single socket allowed")
		}
		return func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", paths[0])
		}, nil
	}
	keyring := agent.NewKeyring()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		key, err := ssh.ParseRawPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s is neither an agent socket nor a private key without a passphrase: %w", p, err)
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
			return nil, fmt.Errorf("adding %s to the agent: %w", p, err)
		}
	}
	return func(context.Context) (net.Conn, error) {
		ours, theirs := net.Pipe()
		go func() {
			_ = agent.ServeAgent(keyring, ours)
			ours.Close()
		}()
		return theirs, nil
	}, nil
}

func (s *sshFlags) CheckSSH(_ context.Context, id string) error {
	if _, ok := s.agents[id]; !ok {
		return builder.ErrSSHNotFound
	}
	return nil
}

func (s *sshFlags) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	dial, ok := s.agents[id]
	if !ok {
		return nil, builder.ErrSSHNotFound
	}
	return dial(ctx)
}

// knownHostsUsage documents --ssh-known-hosts, on kiln build and kiln serve.
const knownHostsUsage = "known_hosts file (several separated by ':') the host key of an ssh git remote of ADD (git@host:repo.git, ssh://...) must be listed in. Default: $SSH_KNOWN_HOSTS; when neither is set any host key is accepted, as BuildKit's ADD does."

// knownHostsFile is --ssh-known-hosts, or else $SSH_KNOWN_HOSTS.
func knownHostsFile(flag string, lookupEnv func(string) (string, bool)) string {
	if flag != "" {
		return flag
	}
	v, _ := lookupEnv("SSH_KNOWN_HOSTS")
	return v
}
