package credentials

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
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
func Default() authn.Keychain {
	return dockerConfig{}
}

// dockerConfig delegates to go-containerregistry's docker-config keychain, which
// implements the precedence above with the docker CLI's own config loader and
// credential-helper client. It exists as a named type so errors carry the registry.
type dockerConfig struct{}

// Resolve implements authn.Keychain.
func (k dockerConfig) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain, so credential helpers that honour a
// context are cancelled with the build.
func (dockerConfig) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	auth, err := authn.Resolve(ctx, authn.DefaultKeychain, target)
	if err != nil {
		return nil, fmt.Errorf("docker config credentials for %s: %w", target.RegistryStr(), err)
	}
	return auth, nil
}
