package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The ports dockerd listens on when -H tcp://host leaves the port out.
const (
	defaultTCPPort = "2375"
	defaultTLSPort = "2376"
)

// socketMode lets the socket's owner and group connect, as dockerd's socket does.
const socketMode = 0o660

// hostSpec is one -H value, parsed.
type hostSpec struct {
	network string // "unix" or "tcp"
	address string // an absolute socket path, or host:port
}

// parseHost parses a -H value as dockerd does: unix:///path, tcp://host[:port], or a
// bare host[:port] meaning tcp. An empty TCP host is 127.0.0.1, so that a listener
// open to the network is always asked for by name (0.0.0.0).
func parseHost(spec string, useTLS bool) (hostSpec, error) {
	proto, addr, ok := strings.Cut(spec, "://")
	if !ok {
		proto, addr = "tcp", spec
	}
	switch proto {
	case "unix":
		if addr == "" {
			return hostSpec{}, fmt.Errorf("-H %q: no socket path", spec)
		}
		abs, err := filepath.Abs(addr)
		if err != nil {
			return hostSpec{}, fmt.Errorf("-H %q: %w", spec, err)
		}
		return hostSpec{network: "unix", address: abs}, nil
	case "tcp":
		if strings.ContainsAny(addr, "/?#") {
			return hostSpec{}, fmt.Errorf("-H %q: want tcp://host:port, without a path", spec)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			// No port (or a bracketed IPv6 address without one).
			host, port = strings.Trim(addr, "[]"), defaultTCPPort
			if useTLS {
				port = defaultTLSPort
			}
		}
		if host == "" {
			host = "127.0.0.1"
		}
		return hostSpec{network: "tcp", address: net.JoinHostPort(host, port)}, nil
	case "fd", "ssh", "npipe":
		return hostSpec{}, fmt.Errorf("-H %q: %s:// listeners are not supported (use unix:// or tcp://)", spec, proto)
	}
	return hostSpec{}, fmt.Errorf("-H %q: unknown protocol %q (want unix:// or tcp://)", spec, proto)
}

// listen opens one listener, TLS-wrapped for TCP when tlsCfg is set (unix sockets are
// guarded by their file mode, as dockerd's are), and returns it with its address as a
// DOCKER_HOST value.
func listen(ctx context.Context, hs hostSpec, tlsCfg *tls.Config) (net.Listener, string, error) {
	if hs.network == "unix" {
		l, err := listenUnix(ctx, hs.address)
		if err != nil {
			return nil, "", err
		}
		return l, "unix://" + hs.address, nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", hs.address)
	if err != nil {
		return nil, "", fmt.Errorf("listening on tcp://%s: %w", hs.address, err)
	}
	dockerHost := "tcp://" + dialable(l.Addr())
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	return l, dockerHost, nil
}

// listenUnix creates the socket at path with socketMode. A socket file left by a
// server that is gone is replaced; a live one, or a file that is not a socket, is an
// error rather than something to delete.
func listenUnix(ctx context.Context, path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: not replacing it", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another server is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on unix://%s: %w", path, err)
	}
	// The socket is created with the umask's mode; until this chmod only its owner
	// (or, with a lax umask, its group) can connect, never more than socketMode allows
	// plus read bits, which connecting does not use.
	if err := os.Chmod(path, socketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return l, nil
}

// dialable turns a listener's address into one a client can dial: an unspecified
// address (0.0.0.0, ::) becomes the loopback one.
func dialable(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return a.String()
	}
	ip := net.IPv4(127, 0, 0, 1)
	if ta.IP.To4() == nil {
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// isLoopback reports whether a listener accepts only connections from this machine.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || ta.IP.IsLoopback()
}

// loadTLS builds the TCP listeners' TLS configuration from dockerd's flags: --tls
// serves TLS (verifying client certificates that are offered when --tlscacert is
// given), --tlsverify demands a client certificate signed by --tlscacert. It returns
// nil for plain TCP. Certificate flags without --tls or --tlsverify are an error, not
// a plain-text listener the user believed encrypted.
func loadTLS(f *serveFlags) (*tls.Config, error) {
	if !f.tls && !f.tlsVerify {
		if f.tlsCACert != "" || f.tlsCert != "" || f.tlsKey != "" {
			return nil, errors.New("--tlscacert, --tlscert and --tlskey need --tls or --tlsverify")
		}
		return nil, nil
	}
	if f.tlsCert == "" || f.tlsKey == "" {
		return nil, errors.New("--tls and --tlsverify need --tlscert and --tlskey")
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading --tlscert %s and --tlskey %s: %w", f.tlsCert, f.tlsKey, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.tlsCACert != "" {
		pem, err := os.ReadFile(f.tlsCACert)
		if err != nil {
			return nil, fmt.Errorf("--tlscacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tlscacert %s: no PEM certificates in it", f.tlsCACert)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	if f.tlsVerify {
		if cfg.ClientCAs == nil {
			return nil, errors.New("--tlsverify needs --tlscacert: the CA that signs client certificates")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
