package buildkitapi

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth"
)

// authWait bounds one credentials lookup through the client's session.
const authWait = 30 * time.Second

// keychain is one build's: the client's credentials (its docker login, asked through
// the session's auth provider), then the server's.
func (s *Server) keychain(ctx context.Context, sessionID string) authn.Keychain {
	kc := &sessionKeychain{ctx: ctx, sm: s.sessions, id: sessionID}
	if s.cfg.Registry.Keychain == nil {
		return kc
	}
	return authn.NewMultiKeychain(kc, s.cfg.Registry.Keychain)
}

// sessionKeychain asks the client for credentials through its session. A client
// without an auth provider, or without credentials for a registry, gives Anonymous,
// and the server's keychain is asked next.
type sessionKeychain struct {
	ctx context.Context
	sm  *session.Manager
	id  string
}

// Resolve implements authn.Keychain.
func (k *sessionKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	if host == name.DefaultRegistry {
		host = "registry-1.docker.io" // the name BuildKit asks the client's provider for
	}
	ctx, cancel := context.WithTimeout(k.ctx, authWait)
	defer cancel()
	get := auth.CredentialsFunc(ctx, k.sm, session.NewGroup(k.id))
	_, user, secret, err := get(host)
	if err != nil || secret == "" {
		// No provider, no credentials, or a client that went away: anonymous, as
		// BuildKit treats it, so that the server's own credentials can answer.
		return authn.Anonymous, nil
	}
	if user == "" {
		return authn.FromConfig(authn.AuthConfig{IdentityToken: secret}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: secret}), nil
}
