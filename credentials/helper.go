package credentials

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// helperClouds maps the docker credential helpers kaniko's image ships
// (docker-credential-<name>) to the built-in cloud keychain that answers in their
// place, so that a docker config naming one of them (`"credsStore": "ecr-login"`, a
// `credHelpers` entry) works in kiln's image, whose links of those names run kiln.
var helperClouds = map[string]string{"ecr-login": "ecr", "gcr": "google", "acr-env": "acr"}

// errNotFound is the credential-helper protocol's answer for "no credentials": docker
// and go-containerregistry then go on anonymously.
var errNotFound = errors.New("credentials not found in native keychain")

// HelperName returns the helper kiln answers for when its program name is program
// (docker-credential-ecr-login, -gcr, -acr-env), and whether it is one.
func HelperName(program string) (string, bool) {
	name, ok := strings.CutPrefix(program, "docker-credential-")
	if !ok {
		return "", false
	}
	_, ok = helperClouds[name]
	return name, ok
}

// ServeHelper answers one call of the docker credential-helper protocol as the helper
// named: "get" reads a registry (a server URL) from in and writes
// {"ServerURL","Username","Secret"} from that cloud's built-in keychain (Cloud), "list"
// writes {} (nothing is stored), and "store" and "erase" are accepted and change
// nothing, as a helper that mints short-lived tokens does. A registry the cloud does
// not own, or one it has no credentials for, is the protocol's "credentials not found
// in native keychain", which callers read as anonymous.
func ServeHelper(ctx context.Context, helper, action string, in io.Reader, out io.Writer, opts ...Option) error {
	cloud, ok := helperClouds[helper]
	if !ok {
		return fmt.Errorf("kiln answers for the credential helpers docker-credential-{ecr-login,gcr,acr-env}, not %q", helper)
	}
	switch action {
	case "get":
	case "list":
		_, err := io.WriteString(out, "{}\n")
		return err
	case "store", "erase":
		_, err := io.Copy(io.Discard, in)
		return err
	default:
		return fmt.Errorf("unknown action %q: a credential helper takes get, store, erase or list", action)
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the server URL: %w", err)
	}
	serverURL := strings.TrimSpace(line)
	registry := registryHost(serverURL)
	if registry == "" {
		return errNotFound
	}
	c := newCloud(newOptions(opts))
	var p provider
	for _, cand := range c.providers {
		if cand.name == cloud {
			p = cand
		}
	}
	if !p.owns(hostname(registry)) {
		return errNotFound
	}
	auth, err := fetchWithContext(ctx, p, registry, c.limit)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Debugf("no %s credentials for %s (%s)", p.name, registry, scrub(err))
		return errNotFound
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return errNotFound
	}
	answer := struct{ ServerURL, Username, Secret string }{ServerURL: serverURL, Username: cfg.Username, Secret: cfg.Password}
	if cfg.IdentityToken != "" {
		answer.Username, answer.Secret = "<token>", cfg.IdentityToken
	}
	if answer.Secret == "" {
		return errNotFound
	}
	return json.NewEncoder(out).Encode(answer)
}

// NotFound reports whether err is the protocol's "not found" answer, which the
// helper prints on stdout (exit code 1), where docker and go-containerregistry read it.
func NotFound(err error) bool { return errors.Is(err, errNotFound) }
