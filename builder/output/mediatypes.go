package output

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCIMediaTypes returns img with an OCI manifest: a Docker schema 2 image's manifest
// names its config and layers by their OCI media types (the blobs are the same bytes,
// so the config digest, the image ID, does not change; the manifest digest does).
// BuildKit's oci exporter writes OCI types (its oci-mediatypes=true); an image that
// already is OCI is returned as it is.
func OCIMediaTypes(img v1.Image) (v1.Image, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	if mt != types.DockerManifestSchema2 {
		return img, nil
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.MediaType = types.OCIManifestSchema1
	m.Config.MediaType = types.OCIConfigJSON
	for i, l := range m.Layers {
		switch l.MediaType {
		case types.DockerLayer:
			m.Layers[i].MediaType = types.OCILayer
		case types.DockerUncompressedLayer:
			m.Layers[i].MediaType = types.OCIUncompressedLayer
		case types.DockerForeignLayer:
			m.Layers[i].MediaType = types.OCIRestrictedLayer
		default:
			return nil, fmt.Errorf("layer %d: media type %s has no OCI name", i, l.MediaType)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &ociTyped{Image: img, raw: raw, manifest: m,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}, nil
}

// ociTyped is an image under a rewritten manifest; everything else is the image's.
type ociTyped struct {
	v1.Image
	raw      []byte
	manifest *v1.Manifest
	digest   v1.Hash
}

func (i *ociTyped) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *ociTyped) RawManifest() ([]byte, error)        { return bytes.Clone(i.raw), nil }
func (i *ociTyped) Manifest() (*v1.Manifest, error)     { return i.manifest.DeepCopy(), nil }
func (i *ociTyped) Digest() (v1.Hash, error)            { return i.digest, nil }
func (i *ociTyped) Size() (int64, error)                { return int64(len(i.raw)), nil }
