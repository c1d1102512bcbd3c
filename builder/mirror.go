package builder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// candidates returns the references a pull of ref tries, in order: the same repository
// and tag (or digest) on each mirror of ref's registry, then ref itself unless the
// settings forbid falling back to it.
func (p *puller) candidates(ref name.Reference) ([]name.Reference, error) {
	if p.reg.Mirrors == nil {
		return []name.Reference{ref}, nil
	}
	mirrors := p.reg.Mirrors(ref.Context().RegistryStr())
	if len(mirrors) == 0 {
		return []name.Reference{ref}, nil
	}
	sep := ":"
	if _, ok := ref.(name.Digest); ok {
		sep = "@"
	}
	var out []name.Reference
	for _, m := range mirrors {
		mref, err := p.parseReference(m + "/" + ref.Context().RepositoryStr() + sep + ref.Identifier())
		if err != nil {
			return nil, fmt.Errorf("mirror %q for %s: %w", m, ref, err)
		}
		out = append(out, mref)
	}
	if !p.reg.SkipDefaultFallback {
		out = append(out, ref)
	}
	return out, nil
}

// fetchImage returns the first of the candidates that can be fetched, retrying the
// whole list as many times as the settings say. The error names every candidate tried.
func (p *puller) fetchImage(ctx context.Context, candidates []name.Reference, platform v1.Platform) (v1.Image, error) {
	var errs []error
	attempts := p.reg.Retries + 1
	for i := 0; i < attempts; i++ {
		errs = errs[:0]
		for _, ref := range candidates {
			img, err := remote.Image(ref, p.remoteOptions(ctx, ref, platform)...)
			if err == nil {
				return img, nil
			}
			if len(candidates) > 1 {
				err = fmt.Errorf("%s: %w", ref, err)
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return nil, errors.Join(errs...)
			}
		}
		if i+1 < attempts {
			time.Sleep(time.Duration(i+1) * time.Second)
		}
	}
	return nil, errors.Join(errs...)
}

// transportFor returns the transport pulls from registry use: the configured
// per-registry transport, or go-containerregistry's default held to the network
// limits, with certificate checks off where asked.
func (p *puller) transportFor(registry string) http.RoundTripper {
	var rt http.RoundTripper
	if p.reg.Transport != nil {
		rt = p.reg.Transport(registry)
	}
	if rt == nil {
		rt = p.reg.Net.Transport(remote.DefaultTransport.(*http.Transport))
	}
	if p.reg.Insecure == nil || !p.reg.Insecure(registry) {
		return rt
	}
	base, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	tr := base.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the user asked for it
	return tr
}
