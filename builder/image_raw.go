package builder

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// rawImage is a pulled image as its registry serves it: manifest and config bytes. A
// build whose final stage changes nothing of its base (a Dockerfile of one FROM) gives
// that very image, with the base's ID, as Docker's classic builder does; re-encoding
// the config would make a new ID on every build.
type rawImage struct {
	mediaType types.MediaType
	manifest  []byte
	config    []byte
}

// image is the raw image over layers, the local copies of its layers.
func (r *rawImage) image(layers []v1.Layer) (v1.Image, error) {
	byDigest := make(map[v1.Hash]v1.Layer, len(layers))
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		byDigest[d] = l
	}
	img, err := partial.CompressedToImage(&rawCore{raw: r, layers: byDigest})
	if err != nil {
		return nil, fmt.Errorf("assembling the base image: %w", err)
	}
	return img, nil
}

// rawCore is the partial.CompressedImageCore of a rawImage.
type rawCore struct {
	raw    *rawImage
	layers map[v1.Hash]v1.Layer
}

func (c *rawCore) RawConfigFile() ([]byte, error)      { return c.raw.config, nil }
func (c *rawCore) MediaType() (types.MediaType, error) { return c.raw.mediaType, nil }
func (c *rawCore) RawManifest() ([]byte, error)        { return c.raw.manifest, nil }

func (c *rawCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	l, ok := c.layers[h]
	if !ok {
		return nil, fmt.Errorf("the base image has no layer %s", h)
	}
	return l, nil
}

// readRaw returns img's manifest and config bytes.
func readRaw(img v1.Image) (*rawImage, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	mf, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	return &rawImage{mediaType: mt, manifest: mf, config: cfg}, nil
}
