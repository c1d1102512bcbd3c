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

	mu     sync.Mutex
	images map[string]*imageState // by reference string as written (after expansion)
}

// pullerOption configures a puller.
type pullerOption func(*puller)

// withPullEvents sends the puller's progress to emit.
func withPullEvents(emit func(Event)) pullerOption { return func(p *puller) { p.emit = emit } }

// withBaseCache makes the puller read and fill the base cache c.
func withBaseCache(c *baseCache, policy PullPolicy) pullerOption {
	return func(p *puller) { p.cache, p.policy = c, policy }
}

// withForce re-downloads images and blobs the cache already holds.
func withForce(force bool) pullerOption { return func(p *puller) { p.force = force } }

func newPuller(reg Registry, platform v1.Platform, blobDir string, opts ...pullerOption) *puller {
	p := &puller{reg: reg, platform: platform, blobDir: blobDir, images: map[string]*imageState{}, emit: func(Event) {}}
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

// pull returns the state of image ref for the given platform, downloading its layers.
func (p *puller) pull(ctx context.Context, refStr string, platform v1.Platform) (*imageState, v1.Hash, error) {
	key := refStr + "|" + platform.String()
	p.mu.Lock()
	st, ok := p.images[key]
	p.mu.Unlock()
	if ok {
		return st.clone(), st.id(), nil
	}
	ref, err := p.parseReference(refStr)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	candidates, err := p.candidates(ref)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	start := time.Now()
	if p.cache != nil {
		st, err = p.pullCached(ctx, refStr, ref, candidates, platform)
	} else {
		st, err = p.pullRemote(ctx, refStr, candidates, platform)
	}
	if err != nil {
		return nil, v1.Hash{}, err
	}
	p.emit(Debug{Message: fmt.Sprintf("Base image %s ready in %s", refStr, time.Since(start).Round(time.Millisecond))})
	// A push to the base's own registry mounts these layers from the base's repository
	// instead of uploading them (cross-repository blob mount); elsewhere the push asks
	// whether the registry has each blob and skips those it has.
	for i, l := range st.layers {
		st.layers[i] = &remote.MountableLayer{Layer: l, Reference: ref}
	}
	p.mu.Lock()
	p.images[key] = st
	p.mu.Unlock()
	return st.clone(), st.id(), nil
}

// pullRemote downloads the image into the blob directory (no base cache).
func (p *puller) pullRemote(ctx context.Context, refStr string, candidates []name.Reference, platform v1.Platform) (*imageState, error) {
	img, err := p.fetchImage(ctx, candidates, platform)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", refStr, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", refStr, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading layers of %s: %w", refStr, err)
	}
	local, err := p.fetchLayers(ctx, refStr, layers, p.fetchLayer)
	if err != nil {
		return nil, err
	}
	return &imageState{config: *cf.DeepCopy(), layers: local}, nil
}

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
			out[i], errs[i] = fetch(ctx, l)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("downloading layers of %s: %w", refStr, err)
	}
	return out, nil
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
	size, err := io.Copy(tmp, ctxReader{ctx, rc})
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

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
