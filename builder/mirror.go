package builder

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

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

// fetchDescriptor returns the manifest or index of the first of the candidates that
// answers, retrying the whole list as many times as the settings say. The error names
// every candidate tried.
func (p *puller) fetchDescriptor(ctx context.Context, candidates []name.Reference, platform v1.Platform) (*remote.Descriptor, error) {
	var desc *remote.Descriptor
	err := p.firstCandidate(ctx, candidates, func(ref name.Reference) error {
		d, err := remote.Get(ref, p.remoteOptions(ctx, ref, platform)...)
		if err != nil {
			return err
		}
		desc = d
		return nil
	})
	return desc, err
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
