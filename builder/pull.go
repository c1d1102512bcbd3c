package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/ctxio"
	"github.com/kiln-build/kiln/snapshot"
)

// puller fetches base images and keeps their layers as blob files in one directory,
// so a layer used twice in a build is downloaded once and the built image refers to
// local files rather than the registry. With a base cache, the layers are files of
// the cache instead, and images the cache holds are not downloaded at all.
type puller struct {
	reg      Registry
	platform v1.Platform
	blobDir  string

	// cache is the persistent base-image cache, nil for none; policy says when a
	// cached tag is trusted; force re-downloads what the cache holds (kiln warm
	// --force).
	cache  *baseCache
	policy PullPolicy
	force  bool
	emit   func(Event)

	// layerRetries is how many times a layer download that failed is tried again
	// (kaniko's --image-fs-extract-retry); retryDelay is the wait before the first
	// retry, doubled before each further one.
	layerRetries int
	retryDelay   time.Duration
	// observe is told the bytes downloaded and the base-cache lookups.
	observe Observer

	mu     sync.Mutex
	images map[string]pulledImage // by reference as written (after expansion) and platform
}

// pulledImage is a base image the puller holds: its state and the ID Docker shows for
// it, the digest of its config as the registry serves it.
type pulledImage struct {
	state *imageState
	id    v1.Hash
	// raw is the image as served, nil once the puller changed its config (see pull).
	raw *rawImage
}

// pullerOption configures a puller.
type pullerOption func(*puller)

// withPullEvents sends the puller's progress to emit.
func withPullEvents(emit func(Event)) pullerOption { return func(p *puller) { p.emit = emit } }

// withBaseCache makes the puller read and fill the base cache c.
func withBaseCache(c *baseCache, policy PullPolicy) pullerOption {
	return func(p *puller) { p.cache, p.policy = c, policy }
}

// withLayerRetries tries a failed layer download n more times.
func withLayerRetries(n int) pullerOption { return func(p *puller) { p.layerRetries = n } }

// withObserver tells o what the puller downloads and finds in the base cache.
func withObserver(o Observer) pullerOption { return func(p *puller) { p.observe = observerOf(o) } }

// withForce re-downloads images and blobs the cache already holds.
func withForce(force bool) pullerOption { return func(p *puller) { p.force = force } }

func newPuller(reg Registry, platform v1.Platform, blobDir string, opts ...pullerOption) *puller {
	p := &puller{reg: reg, platform: platform, blobDir: blobDir, images: map[string]pulledImage{}, emit: func(Event) {}, observe: nopObserver{}, retryDelay: time.Second}
	for _, o := range opts {
		o(p)
	}
	return p
}

func (p *puller) remoteOptions(ctx context.Context, ref name.Reference, platform v1.Platform) []remote.Option {
	kc := p.reg.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithPlatform(platform),
	}
	return append(opts, remote.WithTransport(p.transportFor(ref.Context().RegistryStr())))
}

// pull returns the state of image ref for the platform wanted, downloading its layers,
// and the image's ID (its config digest, what Docker prints after FROM). The state is
// the caller's to change. An index gives its entry for the platform; an image that does
// not provide the platform is a *PlatformError when the platform was asked for
// explicitly, and a warning otherwise (see checkConfigPlatform).
func (p *puller) pull(ctx context.Context, refStr string, want platformWant) (*imageState, v1.Hash, error) {
	got, err := p.pullImage(ctx, refStr, want)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return got.state, got.id, nil
}

// pullImage is pull, also giving the image as served (see rawImage).
func (p *puller) pullImage(ctx context.Context, refStr string, want platformWant) (pulledImage, error) {
	key := refStr + "|" + want.key()
	p.mu.Lock()
	got, ok := p.images[key]
	p.mu.Unlock()
	if ok {
		got.state = got.state.clone()
		return got, nil
	}
	ref, err := p.parseReference(refStr)
	if err != nil {
		return pulledImage{}, err
	}
	candidates, err := p.candidates(ref)
	if err != nil {
		return pulledImage{}, err
	}
	start := time.Now()
	if p.cache != nil {
		got, err = p.pullCached(ctx, refStr, ref, candidates, want.Platform)
	} else {
		got, err = p.pullRemote(ctx, refStr, candidates, want.Platform)
	}
	if err != nil {
		return pulledImage{}, err
	}
	warning, err := checkConfigPlatform(refStr, &got.state.config, want)
	if err != nil {
		return pulledImage{}, err
	}
	if warning != "" {
		p.emit(Warning{Message: warning})
	}
	if got.state.config.OS == "" || got.state.config.Architecture == "" {
		cf := &got.state.config
		cf.OS, cf.Architecture, cf.Variant = want.OS, want.Architecture, want.Variant
		got.raw = nil
	}
	p.emit(Debug{Message: fmt.Sprintf("Base image %s ready in %s", refStr, time.Since(start).Round(time.Millisecond))})
	// A push to the base's own registry mounts these layers from the base's repository
	// instead of uploading them (cross-repository blob mount); elsewhere the push asks
	// whether the registry has each blob and skips those it has.
	for i, l := range got.state.layers {
		got.state.layers[i] = &remote.MountableLayer{Layer: l, Reference: ref}
	}
	p.mu.Lock()
	p.images[key] = got
	p.mu.Unlock()
	got.state = got.state.clone()
	return got, nil
}

// pullRemote downloads the image into the blob directory (no base cache).
func (p *puller) pullRemote(ctx context.Context, refStr string, candidates []name.Reference, platform v1.Platform) (pulledImage, error) {
	desc, err := p.fetchDescriptor(ctx, candidates, platform)
	if err != nil {
		return pulledImage{}, fmt.Errorf("pulling %s: %w", refStr, err)
	}
	img, err := platformImage(refStr, desc, platform)
	if err != nil {
		return pulledImage{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return pulledImage{}, fmt.Errorf("reading config of %s: %w", refStr, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return pulledImage{}, fmt.Errorf("reading config of %s: %w", refStr, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return pulledImage{}, fmt.Errorf("reading layers of %s: %w", refStr, err)
	}
	raw, err := readRaw(img)
	if err != nil {
		return pulledImage{}, fmt.Errorf("reading %s: %w", refStr, err)
	}
	local, err := p.fetchLayers(ctx, refStr, layers, p.fetchLayer)
	if err != nil {
		return pulledImage{}, err
	}
	return pulledImage{state: &imageState{config: *cf.DeepCopy(), layers: local}, id: id, raw: raw}, nil
}

// platformImage returns the image desc names for platform: desc itself when it is an
// image, or its index's entry for platform (nested indexes followed), or a
// *PlatformError naming the platforms the index has.
func platformImage(refStr string, desc *remote.Descriptor, platform v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", refStr, err)
		}
		return img, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", refStr, err)
	}
	for depth := 0; ; depth++ {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("pulling %s: %w", refStr, err)
		}
		child, ok := pickChild(im.Manifests, platform)
		if !ok {
			return nil, indexPlatformError(refStr, platform, im.Manifests)
		}
		if !child.MediaType.IsIndex() {
			img, err := idx.Image(child.Digest)
			if err != nil {
				return nil, fmt.Errorf("pulling %s: %w", refStr, err)
			}
			return img, nil
		}
		if depth == maxIndexDepth {
			return nil, fmt.Errorf("pulling %s: indexes nested more than %d deep", refStr, maxIndexDepth)
		}
		if idx, err = idx.ImageIndex(child.Digest); err != nil {
			return nil, fmt.Errorf("pulling %s: %w", refStr, err)
		}
	}
}

// maxIndexDepth bounds how deep indexes of indexes are followed.
const maxIndexDepth = 4

// parseReference parses an image reference, allowing plain HTTP where the registry
// settings say so.
func (p *puller) parseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, p.reg.NameOptions...)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	if p.reg.PlainHTTP != nil && p.reg.PlainHTTP(ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(s, append(p.reg.NameOptions, name.Insecure)...)
		if err != nil {
			return nil, fmt.Errorf("invalid image reference %q: %w", s, err)
		}
	}
	return ref, nil
}

// fetchLayers downloads the layers concurrently (a few at a time) with fetch and
// returns them as local layers in the same order.
func (p *puller) fetchLayers(ctx context.Context, refStr string, layers []v1.Layer, fetch func(context.Context, v1.Layer) (v1.Layer, error)) ([]v1.Layer, error) {
	out := make([]v1.Layer, len(layers))
	errs := make([]error, len(layers))
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = p.fetchRetrying(ctx, refStr, l, fetch)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("downloading layers of %s: %w", refStr, err)
	}
	return out, nil
}

// fetchRetrying calls fetch for one layer, and again after a failure as many times as
// the layer retries allow, waiting retryDelay, then twice as long, and so on. kaniko
// retries extracting the base from the registry's stream (--image-fs-extract-retry);
// kiln downloads each layer to a file, checked against its digest, before extracting
// it from there, so the download is the step that fails transiently and is retried.
func (p *puller) fetchRetrying(ctx context.Context, refStr string, l v1.Layer, fetch func(context.Context, v1.Layer) (v1.Layer, error)) (v1.Layer, error) {
	delay := p.retryDelay
	for attempt := 0; ; attempt++ {
		out, err := fetch(ctx, l)
		if err == nil || attempt >= p.layerRetries || ctx.Err() != nil {
			return out, err
		}
		d, _ := l.Digest()
		p.emit(Warning{Message: fmt.Sprintf("Downloading layer %s of %s failed (%v); retrying in %s (retry %d of %d, --image-fs-extract-retry)",
			d, refStr, err, delay, attempt+1, p.layerRetries)})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (after: %w)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// fetchLayer stores one layer's compressed blob under the blob directory (unless
// it is there already) and returns a layer backed by the file.
func (p *puller) fetchLayer(ctx context.Context, l v1.Layer) (v1.Layer, error) {
	digest, err := l.Digest()
	if err != nil {
		return nil, err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	mt = normalizeLayerMediaType(mt)
	path := filepath.Join(p.blobDir, digest.Algorithm+"-"+digest.Hex)
	if fi, err := os.Stat(path); err == nil {
		return snapshot.LayerFromFile(path, digest, diffID, fi.Size(), mt), nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(p.blobDir, "download-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	total, _ := l.Size()
	size, err := io.Copy(tmp, newProgressReader(ctxio.NewReader(ctx, rc), p.emit, "Downloading", digest.Hex, total))
	p.observe.Transferred(TransferPulled, size)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", digest, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return snapshot.LayerFromFile(path, digest, diffID, size, mt), nil
}

// normalizeLayerMediaType keeps Docker and OCI layer types; foreign or nondistributable
// layers are treated as the plain gzip layers they are.
func normalizeLayerMediaType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer:
		return mt
	case types.DockerForeignLayer, types.OCIRestrictedLayer:
		return types.DockerLayer
	}
	return mt
}
