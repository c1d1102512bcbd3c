package credentials

import (
	"context"
	"regexp"

	"github.com/chrismellard/docker-credential-acr-env/pkg/credhelper"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
)

// acrHost matches Azure Container Registry in the public and sovereign clouds. The
// helper's own pattern is unanchored (it would claim registry.azurecr.io.example.com)
// and also claims mcr.microsoft.com, whose images are public: sending every MCR pull
// through a managed-identity probe would only slow it down.
var acrHost = regexp.MustCompile(`^([a-z0-9-]+\.)+azurecr\.(io|cn|de|us)$`)

func ownsACR(host string) bool { return acrHost.MatchString(host) }

// acrCreds is the ACR keychain: the docker-credential-acr-env helper, which takes a
// service principal, a federated token or the managed identity from the environment
// and exchanges its Azure AD token for a registry refresh token.
type acrCreds struct {
	helper credentials.Helper
}

func newACR() *acrCreds { return &acrCreds{helper: credhelper.NewACRCredentialsHelper()} }

func (a *acrCreds) provider() provider {
	return provider{name: "acr", owns: ownsACR, fetch: a.fetch}
}

// fetch runs the helper. It takes no context; fetchWithContext bounds the wait.
func (a *acrCreds) fetch(_ context.Context, registry string) (authn.Authenticator, error) {
	user, secret, err := a.helper.Get(registry)
	if err != nil {
		return nil, err
	}
	if user == "<token>" { // the credential-helper protocol's mark of an identity token
		return authn.FromConfig(authn.AuthConfig{Username: user, IdentityToken: secret}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: secret}), nil
}
