package credentials

import (
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/nettimeout"
)

// Option configures Chain and Cloud.
type Option func(*options)

type options struct {
	request authn.Keychain
	log     logrus.FieldLogger
	net     nettimeout.Limits
}

func newOptions(opts []Option) options {
	o := options{log: discardLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger is where the cloud keychains say, at debug level, why they fell back to
// anonymous access (no credentials configured, a token exchange refused). Without it
// they say nothing. Secrets are scrubbed from what is logged.
func WithLogger(l logrus.FieldLogger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithNetLimits bounds how long a credential lookup may go without an answer: a
// docker-credential-* helper, or a cloud keychain's token exchange, gets the stall
// limit. Without it, nettimeout's default applies.
func WithNetLimits(l nettimeout.Limits) Option {
	return func(o *options) { o.net = l }
}

// WithRequest puts one request's own credentials (FromRegistryConfig,
// FromRegistryAuth) ahead of every other source. It only affects Chain.
func WithRequest(kc authn.Keychain) Option {
	return func(o *options) { o.request = kc }
}

// Chain returns kiln's keychain, the sources tried in this order for each registry
// (the first that has credentials for it wins):
//
//  1. the request's own credentials, when WithRequest gives them (the server's
//     X-Registry-Config / X-Registry-Auth);
//  2. the docker config.json and its credential helpers (Default);
//  3. the built-in cloud keychain that owns the registry's host (Cloud): GCR and
//     Artifact Registry, ECR, ACR;
//  4. anonymous access.
//
// A broken docker config (a credHelpers entry naming a missing program) is an error,
// as it is for docker: the user asked for that helper. A cloud keychain that finds no
// credentials, in contrast, answers anonymous, so public images on gcr.io, ECR Public
// or ACR still pull.
//
// A long-running server should build one Chain and reuse it: the cloud keychains
// cache tokens and remember failed lookups for a while. Per-request credentials can
// then be put in front with authn.NewMultiKeychain(request, chain), which is what
// WithRequest does.
func Chain(opts ...Option) authn.Keychain {
	o := newOptions(opts)
	kcs := make([]authn.Keychain, 0, 3)
	if o.request != nil {
		kcs = append(kcs, o.request)
	}
	kcs = append(kcs, dockerConfig{limit: o.net.StallTimeout()}, newCloud(o))
	return authn.NewMultiKeychain(kcs...)
}

func discardLogger() logrus.FieldLogger {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.PanicLevel
	return l
}
