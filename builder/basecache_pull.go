package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PullPolicy says when a base image named by a tag is looked up in its registry
// although the base cache holds an image for that tag. Images named by digest never
// need the registry once cached.
type PullPolicy int

const (
	// PullIfChanged asks the registry which digest the tag names (a HEAD request, which
	// Docker Hub does not count as a pull) and uses the cache when it holds that digest.
	// When the registry cannot be reached (connection errors, 5xx, 429) the image last
	// cached for the tag is used, with a warning. This is the default. kaniko asks the
	// registry too but fails when it is down.
	PullIfChanged PullPolicy = iota
	// PullIfMissing uses the image cached for a tag without asking the registry, as
	// Docker's classic builder uses a local image unless told to pull.
	PullIfMissing
	// PullAlways asks the registry and fails when it cannot answer (docker build --pull).
	PullAlways
)

// lockRetryDelay is how often a locked index.json is tried again.
const lockRetryDelay = 10 * time.Millisecond

// pullerOptions returns the options that give the build's puller its events and the
// workspace's base cache.
func (b *build) pullerOptions() ([]pullerOption, error) {
	opts := []pullerOption{withPullEvents(b.emit), withLayerRetries(b.req.ExtractRetries), withObserver(b.ws.Observer)}
	if b.ws.BaseCache != "" {
		c, err := openBaseCache(b.ws.BaseCache)
		if err != nil {
			return nil, err
		}
		opts = append(opts, withBaseCache(c, b.req.Pull))
	}
	return opts, nil
}

// pullCached returns the image from the base cache, downloading into the cache what
// it does not hold yet.
func (p *puller) pullCached(ctx context.Context, refStr string, ref name.Reference, candidates []name.Reference, platform v1.Platform) (pulledImage, error) {
	c := p.cache
	var tagName string // the tag to record, for a tag reference
	switch r := ref.(type) {
	case name.Digest:
		d, err := v1.NewHash(r.DigestStr())
		if err != nil {
			return pulledImage{}, fmt.Errorf("%s: %w", refStr, err)
		}
		if img, ok := c.image(d, platform); ok && !p.force {
			p.emit(Debug{Message: fmt.Sprintf("Using %s from the base cache", d)})
			return img.pulled(), nil
		}
	case name.Tag:
		tagName = r.Name()
		if p.policy == PullIfMissing && !p.force {
			if got, ok := p.cachedTag(tagName, platform); ok {
				return got, nil
			}
		}
		_, fallback := c.lookupName(tagName, platform)
		from, d, err := p.resolveTag(ctx, candidates, fallback && p.policy == PullIfChanged)
		if err != nil {
			if p.policy == PullIfChanged && !p.force && ctx.Err() == nil && unreachable(err) {
				if got, ok := p.cachedTag(tagName, platform); ok {
					p.emit(Warning{Message: fmt.Sprintf("Cannot reach the registry of %s (%v): using the image cached for the tag", refStr, err)})
					return got, nil
				}
			}
			return pulledImage{}, fmt.Errorf("pulling %s: %w", refStr, err)
		}
		if img, ok := c.image(d, platform); ok && !p.force {
			p.emit(Debug{Message: fmt.Sprintf("Using %s (%s) from the base cache", d, refStr)})
			if cached, ok := c.lookupName(tagName, platform); !ok || cached != img.manifest {
				if err := c.record(ctx, img.descriptor(tagName)); err != nil {
					return pulledImage{}, err
				}
			}
			return img.pulled(), nil
		}
		// Download what the tag named when asked, even if it moves meanwhile.
		candidates = []name.Reference{from.Context().Digest(d.String())}
	}
	img, err := p.download(ctx, refStr, candidates, platform, tagName)
	if err != nil {
		return pulledImage{}, err
	}
	return img.pulled(), nil
}

// cachedTag returns the image last cached for a tag, if the cache holds all of it.
func (p *puller) cachedTag(tagName string, platform v1.Platform) (pulledImage, bool) {
	d, ok := p.cache.lookupName(tagName, platform)
	if !ok {
		return pulledImage{}, false
	}
	img, ok := p.cache.image(d, platform)
	if !ok {
		return pulledImage{}, false
	}
	p.emit(Debug{Message: fmt.Sprintf("Using %s (%s) from the base cache without asking the registry", d, tagName)})
	return img.pulled(), true
}

// quickRetry replaces go-containerregistry's retries (1 s, then 3 s) when asking for
// a tag's digest while a cached image could stand in: a registry that is down then
// costs a build half a second, not four.
func quickRetry() remote.Backoff {
	return remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}
}

// resolveTag asks the candidates, in order, which digest the tag names, and returns
// the candidate that answered. quick retries network failures briefly.
func (p *puller) resolveTag(ctx context.Context, candidates []name.Reference, quick bool) (name.Reference, v1.Hash, error) {
	var (
		from   name.Reference
		digest v1.Hash
	)
	err := p.firstCandidate(ctx, candidates, func(ref name.Reference) error {
		opts := p.remoteOptions(ctx, ref, p.platform)
		if quick {
			opts = append(opts, remote.WithRetryBackoff(quickRetry()))
		}
		desc, err := remote.Head(ref, opts...)
		if err != nil {
			return err
		}
		from, digest = ref, desc.Digest
		return nil
	})
	return from, digest, err
}

// download fetches the image for platform from the first candidate that serves it into
// the cache, records it under tagName (or its digest alone) and returns it.
func (p *puller) download(ctx context.Context, refStr string, candidates []name.Reference, platform v1.Platform, tagName string) (*cachedImage, error) {
	c := p.cache
	desc, err := p.fetchDescriptor(ctx, candidates, platform)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", refStr, err)
	}
	if desc.MediaType.IsIndex() {
		// Kept so a FROM naming the index by digest resolves offline.
		if _, err := c.putBlob(ctx, desc.Manifest); err != nil {
			return nil, err
		}
	}
	img, err := platformImage(refStr, desc, platform)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading layers of %s: %w", refStr, err)
	}
	if _, err := p.fetchLayers(ctx, refStr, layers, p.cacheLayer); err != nil {
		return nil, err
	}
	cfgRaw, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", refStr, err)
	}
	mfRaw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", refStr, err)
	}
	mf, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", refStr, err)
	}
	if d, err := c.putBlob(ctx, cfgRaw); err != nil {
		return nil, err
	} else if d != mf.Config.Digest {
		return nil, fmt.Errorf("pulling %s: config has digest %s, the manifest says %s", refStr, d, mf.Config.Digest)
	}
	md, err := c.putBlob(ctx, mfRaw)
	if err != nil {
		return nil, err
	}
	cached, ok := c.image(md, platform)
	if !ok {
		return nil, fmt.Errorf("pulling %s: the image is incomplete in the base cache %s", refStr, c.dir)
	}
	if err := c.record(ctx, cached.descriptor(tagName)); err != nil {
		return nil, err
	}
	p.emit(Debug{Message: fmt.Sprintf("Stored %s (%s) in the base cache in %s", md, refStr, time.Since(start).Round(time.Millisecond))})
	return cached, nil
}

// cacheLayer stores one layer's compressed blob in the cache unless it is there.
func (p *puller) cacheLayer(ctx context.Context, l v1.Layer) (v1.Layer, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	if !p.force && p.cache.hasBlob(d, size) {
		p.observe.CacheLookup(CacheKindBaseLayer, true)
		return l, nil
	}
	p.observe.CacheLookup(CacheKindBaseLayer, false)
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	n, err := p.cache.writeBlob(ctx, d, size, newProgressReader(rc, p.emit, "Downloading", d.Hex, size))
	p.observe.Transferred(TransferPulled, n)
	if err != nil {
		return nil, fmt.Errorf("layer %w", err)
	}
	return l, nil
}

// firstCandidate calls try with each candidate in order until one succeeds,
// retrying the whole list as many times as the settings say. The error names every
// candidate tried.
func (p *puller) firstCandidate(ctx context.Context, candidates []name.Reference, try func(name.Reference) error) error {
	var errs []error
	for attempt := 0; attempt <= p.reg.Retries; attempt++ {
		errs = errs[:0]
		for _, ref := range candidates {
			err := try(ref)
			if err == nil {
				return nil
			}
			if len(candidates) > 1 {
				err = fmt.Errorf("%s: %w", ref, err)
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		}
		if attempt < p.reg.Retries {
			select {
			case <-ctx.Done():
				return errors.Join(append(errs, ctx.Err())...)
			case <-time.After(time.Duration(attempt+1) * time.Second):
			}
		}
	}
	return errors.Join(errs...)
}

// unreachable reports whether a registry error means the registry could not answer
// (network failure, server error, rate limit), as opposed to an answer that must not
// be papered over with a cached image (unknown tag, denied access).
func unreachable(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= http.StatusInternalServerError || te.StatusCode == http.StatusTooManyRequests
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

// pulled is the image as a stage's starting state, with its ID.
func (img *cachedImage) pulled() pulledImage {
	return pulledImage{state: &imageState{config: *img.config.DeepCopy(), layers: img.layers}, id: img.configDigest, raw: img.raw}
}

// descriptor is the index.json entry of the image, named tagName when not empty.
func (img *cachedImage) descriptor(tagName string) v1.Descriptor {
	desc := v1.Descriptor{
		MediaType: img.mediaType,
		Digest:    img.manifest,
		Size:      img.size,
		Platform:  img.config.Platform(),
	}
	if desc.Platform == nil {
		desc.Platform = &v1.Platform{OS: img.config.OS, Architecture: img.config.Architecture}
	}
	if tagName != "" {
		desc.Annotations = map[string]string{refNameAnnotation: tagName}
	}
	return desc
}
