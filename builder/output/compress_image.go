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

// rewrapImage returns img under a manifest naming layers (the compressed ones at the
// indexes in changed) with the media types kind gives them in the manifest's kind.
func rewrapImage(img v1.Image, m *v1.Manifest, layers []v1.Layer, changed map[v1.Hash][]int, kind Compression) (v1.Image, error) {
	m = m.DeepCopy()
	oci := m.MediaType == types.OCIManifestSchema1
	if kind == Zstd && !oci {
		// Schema 2 has no zstd layer type: the image becomes an OCI one, each Docker
		// layer keeping its bytes under the OCI name of its type.
		m.MediaType = types.OCIManifestSchema1
		if m.Config.MediaType == types.DockerConfigJSON {
			m.Config.MediaType = types.OCIConfigJSON
		}
		for i, l := range m.Layers {
			if mt := ociName(l.MediaType); mt != "" {
				m.Layers[i].MediaType = mt
			}
		}
		oci = true
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = l
		if mt, err := l.MediaType(); err == nil && mt != m.Layers[i].MediaType {
			out[i] = &typedLayer{Layer: l, mt: m.Layers[i].MediaType} // renamed above
		}
	}
	for _, idx := range changed {
		for _, i := range idx {
			mt := layerType(kind, oci)
			d := &m.Layers[i]
			d.MediaType = mt
			switch l := layers[i].(type) {
			case *compressedLayer:
				cl := *l
				cl.mt = mt
				d.Digest, d.Size = l.digest, l.size
				out[i] = &cl
			default:
				out[i] = &typedLayer{Layer: l, mt: mt}
			}
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("compressing layers: %w", err)
	}
	sum := sha256.Sum256(raw)
	byDigest := make(map[v1.Hash]v1.Layer, len(out))
	byDiffID := make(map[v1.Hash]v1.Layer, len(out))
	for i, l := range out {
		byDigest[m.Layers[i].Digest] = l
		if id, err := l.DiffID(); err == nil {
			byDiffID[id] = l
		}
	}
	return &compressedImage{Image: img, raw: raw, manifest: m, layers: out, byDigest: byDigest, byDiffID: byDiffID,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}, nil
}

// layerType is the media type of a layer compressed with kind in a manifest of the
// given kind.
func layerType(kind Compression, oci bool) types.MediaType {
	switch {
	case kind == Zstd:
		return types.OCILayerZStd
	case kind == Uncompressed && oci:
		return types.OCIUncompressedLayer
	case kind == Uncompressed:
		return types.DockerUncompressedLayer
	case oci:
		return types.OCILayer
	}
	return types.DockerLayer
}

// ociName names a Docker layer media type in OCI terms, "" when it needs none.
func ociName(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return ""
}

// typedLayer is a layer under another media type (the same bytes).
type typedLayer struct {
	v1.Layer
	mt types.MediaType
}

func (l *typedLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

// compressedImage is an image under a manifest naming compressed layers; the config
// is the image's own.
type compressedImage struct {
	v1.Image
	raw      []byte
	manifest *v1.Manifest
	layers   []v1.Layer
	byDigest map[v1.Hash]v1.Layer
	byDiffID map[v1.Hash]v1.Layer
	digest   v1.Hash
}

func (i *compressedImage) MediaType() (types.MediaType, error) { return i.manifest.MediaType, nil }
func (i *compressedImage) RawManifest() ([]byte, error)        { return bytes.Clone(i.raw), nil }
func (i *compressedImage) Manifest() (*v1.Manifest, error)     { return i.manifest.DeepCopy(), nil }
func (i *compressedImage) Digest() (v1.Hash, error)            { return i.digest, nil }
func (i *compressedImage) Size() (int64, error)                { return int64(len(i.raw)), nil }
func (i *compressedImage) Layers() ([]v1.Layer, error) {
	return append([]v1.Layer(nil), i.layers...), nil
}

func (i *compressedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if l, ok := i.byDigest[h]; ok {
		return l, nil
	}
	return i.Image.LayerByDigest(h) // the config blob
}

func (i *compressedImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	if l, ok := i.byDiffID[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("image has no layer with diff ID %s", h)
}
