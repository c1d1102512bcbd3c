package testworld

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// defaultDockerHost is where dockerd listens unless DOCKER_HOST says otherwise.
const defaultDockerHost = "unix:///var/run/docker.sock"

// checkLoopback rejects registry addresses that are not host:port on this machine.
func checkLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("registry address %q: %w", hostport, err)
	}
	if port == "" {
		return fmt.Errorf("registry address %q: empty port", hostport)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("registry address %q is not a loopback address", hostport)
	}
	return nil
}

// probeRegistry asks hostport's /v2/ endpoint whether it speaks the distribution API.
// 401 counts as an answer: the registry is there, it merely wants credentials.
func probeRegistry(ctx context.Context, hostport string) error {
	u := "http://" + hostport + "/v2/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusUnauthorized:
		return nil
	}
	return fmt.Errorf("GET %s: unexpected status %s", u, resp.Status)
}

// pingDocker calls the engine API's /_ping at dockerHost (a DOCKER_HOST value; empty means
// the default socket). Only unix:// and tcp:// are understood: the test world never uses
// ssh or TLS endpoints.
func pingDocker(ctx context.Context, dockerHost string) error {
	if dockerHost == "" {
		dockerHost = defaultDockerHost
	}
	u, err := url.Parse(dockerHost)
	if err != nil {
		return fmt.Errorf("DOCKER_HOST %q: %w", dockerHost, err)
	}
	client := &http.Client{}
	base := "http://" + u.Host
	switch u.Scheme {
	case "unix":
		sock := u.Path
		client.Transport = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}
		base = "http://docker"
	case "tcp":
	default:
		return fmt.Errorf("DOCKER_HOST %q: unsupported scheme %q (want unix or tcp)", dockerHost, u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_ping", nil)
	if err != nil {
		return fmt.Errorf("ping %s: %w", dockerHost, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ping %s: %w", dockerHost, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping %s: status %s: %s", dockerHost, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
