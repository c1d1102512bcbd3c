package registrycache

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/builder"
)

// LayerCompressor compresses the layers entries are pushed with. A build writes its
// layers as plain tars; the registry gets them compressed as an output would
// (output.Compressor implements this).
type LayerCompressor interface {
	// CompressLayer returns l compressed, l itself when it already is.
	CompressLayer(ctx context.Context, l v1.Layer) (v1.Layer, error)
	// Produces reports whether a compressed layer of media type mt is what
	// CompressLayer makes.
	Produces(mt types.MediaType) bool
}

// WithCompression compresses the layers of the entries pushed, and makes an entry
// whose layer is compressed otherwise (stored by a build that asked for another
// compression) a miss: the step cache is keyed without the compression, and the
// image must get the compression its build asked for. Without it layers are pushed
// as they are.
func WithCompression(c LayerCompressor) Option {
	return func(cc *Cache) { cc.compress = c }
}

// compressLayer returns step's layer compressed for the push.
func (c *Cache) compressLayer(ctx context.Context, l v1.Layer) (v1.Layer, error) {
	if c.compress == nil || l == nil {
		return l, nil
	}
	return c.compress.CompressLayer(ctx, l)
}

// checkCompression reports an entry layer this cache's compressor would not have made
// as a miss; plain tars pass, the outputs compress them.
func (c *Cache) checkCompression(ref fmt.Stringer, l v1.Layer) error {
	if c.compress == nil || l == nil {
		return nil
	}
	mt, err := l.MediaType()
	if err != nil {
		return err
	}
	switch mt {
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return nil
	}
	if !c.compress.Produces(mt) {
		return fmt.Errorf("%s holds a %s layer, this build compresses otherwise: %w", ref, mt, builder.ErrCacheMiss)
	}
	return nil
}
