package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Pulled is an image Pull fetched.
type Pulled struct {
	// Image is the image for the platform asked for, with its manifest and config as
	// the registry served them: its ID is the registry's config digest.
	Image v1.Image
	// Ref is the reference pulled, as parsed (a tag or a digest, in the registry asked
	// for even when a mirror served it).
	Ref name.Reference
	// Digest is the digest ref names in the registry: an index's for a multi-platform
	// image, as `docker pull` prints it and records it as the repo digest.
	Digest v1.Hash
}

// Pull fetches the image ref names for platform ("os/arch[/variant]", "" for the
// host's) as a build's FROM does, with the settings of WithRegistry: credentials,
// mirrors, plain-HTTP and unverified-TLS registries, per-registry transports, retries.
// With a base cache (WithWorkspace, Workspace.BaseCache) the image is stored there
// first, as kiln warm stores it, so later builds FROM it need no download; the returned
// image then reads its layers from the cache. Without one its layers stream from the
// registry when read. WithEvents receives the puller's debug messages.
func Pull(ctx context.Context, ref, platform string, opts ...Option) (*Pulled, error) {
	s := settings{events: func(Event) {}}
	for _, o := range opts {
		o(&s)
	}
	plat, err := parsePlatform(platform)
	if err != nil {
		return nil, err
	}
	var popts []pullerOption
	var cache *baseCache
	if dir := s.workspace.BaseCache; dir != "" {
		if cache, err = openBaseCache(dir); err != nil {
			return nil, err
		}
		popts = append(popts, withBaseCache(cache, PullAlways))
	}
	p := newPuller(s.registry, plat, "", append(popts, withPullEvents(s.events))...)
	parsed, err := p.parseReference(ref)
	if err != nil {
		return nil, err
	}
	candidates, err := p.candidates(parsed)
	if err != nil {
		return nil, err
	}
	var (
		desc *remote.Descriptor
		from name.Reference
	)
	err = p.firstCandidate(ctx, candidates, func(c name.Reference) error {
		d, err := remote.Get(c, p.remoteOptions(ctx, c, plat)...)
		if err != nil {
			return err
		}
		desc, from = d, c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	out := &Pulled{Ref: parsed, Digest: desc.Digest}
	if cache == nil {
		if out.Image, err = desc.Image(); err != nil {
			return nil, fmt.Errorf("pulling %s: %w", ref, err)
		}
		return out, nil
	}
	tagName := ""
	if t, ok := parsed.(name.Tag); ok {
		tagName = t.Name()
	}
	// What the tag named a moment ago, from where it was found, even if it moves.
	cached, ok := cache.image(desc.Digest, plat)
	if !ok {
		if cached, err = p.download(ctx, ref, []name.Reference{from.Context().Digest(desc.Digest.String())}, plat, tagName); err != nil {
			return nil, err
		}
	} else if err := cache.record(ctx, cached.descriptor(tagName)); err != nil {
		return nil, err
	}
	if out.Image, err = cachedV1Image(cache, cached); err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return out, nil
}

// cachedV1Image is a base-cache image as a v1.Image whose manifest and config are the
// cached bytes, unchanged.
func cachedV1Image(c *baseCache, img *cachedImage) (v1.Image, error) {
	raw, err := c.readBlob(img.manifest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	cfg, err := c.readBlob(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	ci := &cacheBackedImage{raw: raw, config: cfg, mediaType: img.mediaType, layers: map[v1.Hash]v1.Layer{}}
	for _, l := range img.layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		ci.layers[d] = l
	}
	return partial.CompressedToImage(ci)
}

// cacheBackedImage implements partial.CompressedImageCore over base-cache blobs.
type cacheBackedImage struct {
	raw, config []byte
	mediaType   types.MediaType
	layers      map[v1.Hash]v1.Layer
}

func (ci *cacheBackedImage) RawManifest() ([]byte, error)        { return ci.raw, nil }
func (ci *cacheBackedImage) RawConfigFile() ([]byte, error)      { return ci.config, nil }
func (ci *cacheBackedImage) MediaType() (types.MediaType, error) { return ci.mediaType, nil }
func (ci *cacheBackedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := ci.layers[h]; ok {
		return l, nil
	}
	return nil, errors.New("the base cache has no layer " + h.String())
}
