package output

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/nettimeout"
)

// PushOption configures Push.
type PushOption func(*pushSettings)

type pushSettings struct {
	keychain      authn.Keychain
	transport     http.RoundTripper
	skipTLSVerify func(registry string) bool
	retries       int
	backoff       time.Duration
	progress      func(name.Reference, v1.Update)
	userAgent     string
	// onImmutable, when set, turns a push refused because the tag is immutable into
	// a success, reported to it.
	onImmutable func(name.Reference, error)
	// pushed, when set, is told the bytes of each successful write (WithPushedBytes).
	pushed func(int64)
}

// WithPushedBytes calls fn after each successful push of a reference with the bytes
// of the image's blobs as the registry client counts them (blobs the registry
// already had count too), for a server's metrics.
func WithPushedBytes(fn func(n int64)) PushOption {
	return func(s *pushSettings) { s.pushed = fn }
}

// WithKeychain sets where registry credentials come from. Without it pushes are
// anonymous.
func WithKeychain(kc authn.Keychain) PushOption {
	return func(s *pushSettings) { s.keychain = kc }
}

// WithTransport sets the HTTP transport pushes use (default: go-containerregistry's
// remote.DefaultTransport held to nettimeout's default limits). WithSkipTLSVerify only takes effect on an *http.Transport.
func WithTransport(rt http.RoundTripper) PushOption {
	return func(s *pushSettings) { s.transport = rt }
}

// WithSkipTLSVerify pushes to the registries for which skip returns true without
// verifying their TLS certificate (kaniko's --skip-tls-verify and
// --skip-tls-verify-registry). Plain-HTTP registries are chosen by the reference
// instead: parse it with name.Insecure.
func WithSkipTLSVerify(skip func(registry string) bool) PushOption {
	return func(s *pushSettings) { s.skipTLSVerify = skip }
}

// WithRetries retries a failed push of one reference n more times (kaniko's
// --push-retry), waiting an exponentially growing delay that starts at one second.
// go-containerregistry already retries single requests that fail transiently; this
// retries the whole push, which skips the blobs that already arrived.
func WithRetries(n int) PushOption {
	return func(s *pushSettings) { s.retries = n }
}

// WithRetryBackoff sets the delay before the first retry (default one second); each
// further retry waits twice as long as the one before.
func WithRetryBackoff(d time.Duration) PushOption {
	return func(s *pushSettings) { s.backoff = d }
}

// WithProgress receives upload progress per reference. It is called from a goroutine
// of Push, in order for each reference, and must not block for long.
func WithProgress(fn func(ref name.Reference, update v1.Update)) PushOption {
	return func(s *pushSettings) { s.progress = fn }
}

// WithUserAgent sets the User-Agent prefix registries see, e.g. "kiln/1.2.3".
func WithUserAgent(ua string) PushOption {
	return func(s *pushSettings) { s.userAgent = ua }
}

// WithIgnoreImmutableTagErrors treats a push the registry refused because the tag
// already exists and is immutable (ECR, Artifact Registry, Docker Hub and Harbor
// immutability settings; kaniko's --push-ignore-immutable-tag-errors) as a success:
// the tag keeps the image it had. onIgnored is told about each such push, to warn.
// Other push errors still fail.
func WithIgnoreImmutableTagErrors(onIgnored func(ref name.Reference, err error)) PushOption {
	return func(s *pushSettings) { s.onImmutable = onIgnored }
}

// Push writes img to every reference in refs, one after another, and returns the
// digest of the manifest it pushed. Blobs a registry already has are not uploaded
// again, so pushing to several tags of one repository costs one upload.
func Push(ctx context.Context, img v1.Image, refs []name.Reference, opts ...PushOption) (v1.Hash, error) {
	s := newPushSettings(opts)
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing the image digest: %w", err)
	}
	for _, ref := range refs {
		if err := s.pushOne(ctx, img, ref); err != nil {
			return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
		}
	}
	return digest, nil
}

// newPushSettings applies opts over the defaults.
func newPushSettings(opts []PushOption) *pushSettings {
	s := &pushSettings{
		keychain:  authn.NewMultiKeychain(), // resolves every registry to anonymous
		transport: nettimeout.Limits{}.Transport(remote.DefaultTransport.(*http.Transport)),
		backoff:   time.Second,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// pushOne pushes img to ref, retrying the whole push as configured.
func (s *pushSettings) pushOne(ctx context.Context, img v1.Image, ref name.Reference) error {
	rt := s.transportFor(ref.Context().RegistryStr())
	delay := s.backoff
	for attempt := 0; ; attempt++ {
		err := s.write(ctx, img, ref, rt)
		if err != nil && isImmutableTagError(err) {
			// Pushing again would be refused again.
			if s.onImmutable == nil {
				return err
			}
			s.onImmutable(ref, err)
			return nil
		}
		if err == nil || attempt >= s.retries || !retryable(ctx, err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after %d attempts, last error: %v)", ctx.Err(), attempt+1, err)
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// write makes one push attempt, forwarding progress updates while it runs.
func (s *pushSettings) write(ctx context.Context, img v1.Image, ref name.Reference, rt http.RoundTripper) error {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithTransport(rt),
	}
	if s.userAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(s.userAgent))
	}
	if s.progress == nil && s.pushed == nil {
		return remote.Write(ref, img, ropts...)
	}

	updates := make(chan v1.Update, 64)
	done := make(chan struct{})
	forwarded := make(chan struct{})
	var complete int64 // the last update's count; read after forwarded is closed
	go func() {
		defer close(forwarded)
		forwardProgress(ref, updates, done, func(ref name.Reference, u v1.Update) {
			complete = u.Complete
			if s.progress != nil {
				s.progress(ref, u)
			}
		})
	}()
	err := remote.Write(ref, img, append(ropts, remote.WithProgress(updates))...)
	close(done)
	<-forwarded
	if err == nil && s.pushed != nil {
		s.pushed(complete)
	}
	return err
}

// forwardProgress calls fn for each update until remote closes updates, or until done
// is closed (the write returned without closing it) and the buffer is drained.
func forwardProgress(ref name.Reference, updates <-chan v1.Update, done <-chan struct{}, fn func(name.Reference, v1.Update)) {
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				return
			}
			fn(ref, u)
		case <-done:
			for {
				select {
				case u, ok := <-updates:
					if !ok {
						return
					}
					fn(ref, u)
				default:
					return
				}
			}
		}
	}
}

// transportFor returns the transport for one registry, with certificate checks off
// when the user asked for that registry.
func (s *pushSettings) transportFor(registry string) http.RoundTripper {
	if s.skipTLSVerify == nil || !s.skipTLSVerify(registry) {
		return s.transport
	}
	base, ok := s.transport.(*http.Transport)
	if !ok {
		return s.transport
	}
	t := base.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the user asked for it per registry
	return t
}

// retryable reports whether pushing again could succeed: not after cancellation, and
// not when the registry refused the credentials, which a retry would only repeat.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return false
		}
	}
	return true
}
