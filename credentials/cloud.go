package credentials

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/nettimeout"
)

// retryAfter is how long a registry whose cloud lookup found no credentials is
// answered anonymous without asking again. A lookup can cost seconds of metadata-server
// probing (GCE, EC2, Azure IMDS) when kiln runs outside that cloud; a build pulling
// three public gcr.io images should pay it once, yet a long-running server must notice
// credentials that appear later (a mounted secret, a new instance role).
const retryAfter = time.Minute

// Cloud returns the built-in cloud keychains, each consulted only for the registry
// hosts its cloud owns:
//
//   - Google Container Registry and Artifact Registry (gcr.io, *.gcr.io, *.pkg.dev):
//     Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
//     application_default_credentials.json, the GCE/GKE metadata server and workload
//     identity), then the gcloud CLI;
//   - Amazon ECR (<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn] and the other
//     AWS partitions) and ECR Public (public.ecr.aws): the AWS SDK's default credential
//     chain (AWS_* environment, ~/.aws files and profiles, web identity, ECS task and
//     EC2 instance roles), exchanged for a registry token with GetAuthorizationToken;
//   - Azure Container Registry (*.azurecr.io, .cn, .de, .us): a service principal from
//     AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID, a federated token
//     (AZURE_FEDERATED_TOKEN[_FILE], workload identity), else the managed identity,
//     exchanged for an ACR refresh token.
//
// Any other host (127.0.0.1:5000, docker.io, quay.io) is answered anonymous at once,
// without touching the network. When a cloud finds no credentials, the keychain answers
// anonymous too, logs why at debug level (WithLogger), and does not ask again for that
// registry for a minute; only a cancelled context is an error.
func Cloud(opts ...Option) authn.Keychain {
	return newCloud(newOptions(opts))
}

// provider is one cloud's registry credentials.
type provider struct {
	name  string
	owns  func(host string) bool
	fetch func(ctx context.Context, registry string) (authn.Authenticator, error)
}

// cloudKeychain dispatches a registry to the one provider owning its host.
type cloudKeychain struct {
	log       logrus.FieldLogger
	providers []provider
	now       func() time.Time
	limit     time.Duration // how long one lookup may go unanswered

	mu     sync.Mutex
	misses map[string]time.Time // registry → when its lookup last failed
}

func newCloud(o options) *cloudKeychain {
	return &cloudKeychain{
		log:       o.log,
		providers: []provider{newGoogle().provider(), newECR().provider(), newACR().provider()},
		now:       time.Now,
		limit:     o.net.StallTimeout(),
		misses:    map[string]time.Time{},
	}
}

// Resolve implements authn.Keychain.
func (c *cloudKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return c.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain.
func (c *cloudKeychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	registry := target.RegistryStr()
	p, ok := c.owner(registry)
	if !ok {
		return authn.Anonymous, nil
	}
	log := c.log.WithFields(logrus.Fields{"registry": registry, "keychain": p.name})
	if c.missedRecently(registry) {
		log.Debug("no cloud credentials found recently; pulling anonymously")
		return authn.Anonymous, nil
	}
	auth, err := fetchWithContext(ctx, p, registry, c.limit)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.miss(registry)
		log.Debugf("no %s credentials (%s); trying anonymously", p.name, scrub(err))
		return authn.Anonymous, nil
	}
	log.Debugf("using %s credentials", p.name)
	return auth, nil
}

// owner is the provider whose cloud owns registry's host, if any.
func (c *cloudKeychain) owner(registry string) (provider, bool) {
	host := hostname(registry)
	for _, p := range c.providers {
		if p.owns(host) {
			return p, true
		}
	}
	return provider{}, false
}

func (c *cloudKeychain) missedRecently(registry string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.misses[registry]
	return ok && c.now().Sub(at) < retryAfter
}

func (c *cloudKeychain) miss(registry string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.misses[registry] = c.now()
}

// fetchWithContext runs a provider's lookup so that ctx's cancellation ends the wait
// even though the cloud helpers underneath do not all take a context (the ECR and ACR
// helpers use context.TODO and their own 30-second timeouts). The lookup itself gets
// ctx without its cancellation: a token source built from it is kept and refreshed
// after this call returns, and must not die with one pull's context.
func fetchWithContext(ctx context.Context, p provider, registry string, limit time.Duration) (authn.Authenticator, error) {
	type result struct {
		auth authn.Authenticator
		err  error
	}
	done := make(chan result, 1)
	go func() {
		auth, err := p.fetch(context.WithoutCancel(ctx), registry)
		done <- result{auth, err}
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.auth, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("%s credentials for %s: no answer within %s (%s)", p.name, registry, limit, nettimeout.StallSetting)
	}
}

// hostname reduces a registry (host[:port]) to the lower-case host name the cloud
// patterns are written for.
func hostname(registry string) string {
	h := registry
	if host, _, err := net.SplitHostPort(registry); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
