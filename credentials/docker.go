package credentials

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/nettimeout"
)

// Default returns the keychain a kaniko user expects: the docker CLI's config.json.
//
// Where the configuration comes from, first match wins:
//
//  1. $DOCKER_CONFIG/config.json when DOCKER_CONFIG is set, else ~/.docker/config.json;
//  2. $REGISTRY_AUTH_FILE, then Podman's containers/auth.json (under $XDG_RUNTIME_DIR,
//     then $XDG_CONFIG_HOME or ~/.config), read as a docker config;
//  3. otherwise anonymous access.
//
// Within the file, for each registry: a credHelpers entry names the
// docker-credential-<helper> program to run; else a credsStore names a helper for every
// registry; else the auths entry (auth = base64 "user:password", or identitytoken) is
// used. The registry is looked up by the full repository first, then by host name, and
// Docker Hub by its historical key https://index.docker.io/v1/.
//
// The file is read on every lookup, so a credential refreshed while kiln runs (a
// rotated token in a mounted secret) is picked up by the next pull or push. Errors
// name the registry, never the secret.
//
// A credential helper that gives no answer within nettimeout's default stall limit
// fails the lookup (Chain with WithNetLimits sets another limit); kiln cannot end the
// helper's process, which go-containerregistry's docker-config loader runs.
func Default() authn.Keychain {
	return dockerConfig{limit: nettimeout.DefaultStall}
}

// dockerConfig delegates to go-containerregistry's docker-config keychain, which
// implements the precedence above with the docker CLI's own config loader and
// credential-helper client. It exists as a named type so errors carry the registry.
type dockerConfig struct {
	limit time.Duration // how long a lookup (a credential helper's run) may take
}

// Resolve implements authn.Keychain.
func (k dockerConfig) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain, so credential helpers that honour a
// context are cancelled with the build.
func (k dockerConfig) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	// go-containerregistry runs the helper without a context: wait for it at most
	// the limit, and no longer than ctx.
	type result struct {
		auth authn.Authenticator
		err  error
	}
	done := make(chan result, 1)
	go func() {
		auth, err := authn.Resolve(ctx, authn.DefaultKeychain, target)
		done <- result{auth, err}
	}()
	timer := time.NewTimer(k.limit)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("docker config credentials for %s: %w", target.RegistryStr(), r.err)
		}
		return r.auth, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("docker config credentials for %s: the credential helper gave no answer within %s (%s)",
			target.RegistryStr(), k.limit, nettimeout.StallSetting)
	}
}
