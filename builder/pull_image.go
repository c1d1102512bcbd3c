package builder

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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

// Pull resolves the image ref names for platform ("os/arch[/variant]", "" for the
// host's) as a build's FROM does, with the settings of WithRegistry: credentials,
// mirrors, plain-HTTP and unverified-TLS registries, per-registry transports, retries.
// It fetches the manifest (and the index's, for a multi-platform image) now, so an
// unknown image or refused credentials fail here; the layers stream from the registry
// when the returned image's layers are read. Other options are ignored.
func Pull(ctx context.Context, ref, platform string, opts ...Option) (*Pulled, error) {
	s := settings{events: func(Event) {}}
	for _, o := range opts {
		o(&s)
	}
	plat, err := parsePlatform(platform)
	if err != nil {
		return nil, err
	}
	p := newPuller(s.registry, plat, "", withPullEvents(s.events))
	parsed, err := p.parseReference(ref)
	if err != nil {
		return nil, err
	}
	candidates, err := p.candidates(parsed)
	if err != nil {
		return nil, err
	}
	var desc *remote.Descriptor
	err = p.firstCandidate(ctx, candidates, func(c name.Reference) error {
		d, err := remote.Get(c, p.remoteOptions(ctx, c, plat)...)
		if err != nil {
			return err
		}
		desc = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return &Pulled{Image: img, Ref: parsed, Digest: desc.Digest}, nil
}

// CacheBaseImage stores img in the base cache in dir as a build that pulled it as ref
// would have (kiln warm), so later builds FROM ref need no download: blobs the cache
// lacks are copied from img (a local image, typically: one just stored), and the tag
// of ref, if it has one, names the image in the cache's index.
func CacheBaseImage(ctx context.Context, dir string, img v1.Image, ref name.Reference) error {
	c, err := openBaseCache(dir)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("base cache: %w", err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("base cache: %w", err)
		}
		size, err := l.Size()
		if err != nil {
			return fmt.Errorf("base cache: layer %s: %w", d, err)
		}
		if c.hasBlob(d, size) {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("base cache: layer %s: %w", d, err)
		}
		_, err = c.writeBlob(ctx, d, size, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("base cache: layer %w", err)
		}
	}
	cfgRaw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("base cache: %w", err)
	}
	if _, err := c.putBlob(ctx, cfgRaw); err != nil {
		return err
	}
	mfRaw, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("base cache: %w", err)
	}
	md, err := c.putBlob(ctx, mfRaw)
	if err != nil {
		return err
	}
	// A manifest (not an index) is read whatever the platform asked for.
	cached, ok := c.image(md, v1.Platform{})
	if !ok {
		return errors.New("base cache: the image is incomplete in " + dir)
	}
	tagName := ""
	if t, ok := ref.(name.Tag); ok {
		tagName = t.Name()
	}
	return c.record(ctx, cached.descriptor(tagName))
}
