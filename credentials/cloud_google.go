package credentials

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// ownsGoogle reports whether host is Google Container Registry (gcr.io and its
// regional hosts) or Artifact Registry (<location>-docker.pkg.dev).
func ownsGoogle(host string) bool {
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, ".pkg.dev")
}

// googleCreds is the Google keychain of one Cloud value. It is go-containerregistry's
// google.Keychain made per-instance: that one is a package variable that caches its
// first answer, failure included, for the life of the process.
type googleCreds struct {
	mu   sync.Mutex
	auth authn.Authenticator // once found; its token source refreshes itself
}

func newGoogle() *googleCreds { return &googleCreds{} }

func (g *googleCreds) provider() provider {
	return provider{name: "google", owns: ownsGoogle, fetch: g.fetch}
}

// fetch finds Application Default Credentials, else asks gcloud. The lock makes
// concurrent pulls wait for one lookup instead of each probing the metadata server.
func (g *googleCreds) fetch(ctx context.Context, _ string) (authn.Authenticator, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.auth != nil {
		return g.auth, nil
	}
	auth, envErr := google.NewEnvAuthenticator(ctx)
	if envErr == nil {
		g.auth = auth
		return auth, nil
	}
	auth, gErr := google.NewGcloudAuthenticator(ctx)
	switch {
	case gErr != nil:
		return nil, fmt.Errorf("application default credentials: %w; gcloud: %w", envErr, gErr)
	case auth == authn.Anonymous: // gcloud is not installed
		return nil, fmt.Errorf("application default credentials: %w; gcloud: %w", envErr, errNoGcloud)
	}
	g.auth = auth
	return auth, nil
}

var errNoGcloud = errors.New("not installed")
