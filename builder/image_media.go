package builder

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// mediaTypes chooses the media types of an image made of layers. It is Docker's
// schema 2, which every registry and runtime reads, unless a layer is of a kind only
// an OCI manifest may name (zstd, from --compression=zstd or an OCI base image): the
// image is then an OCI one, and each Docker layer keeps its bytes under the OCI name
// of its media type. overrides[i] is the media type layer i takes in the manifest,
// "" for its own.
func mediaTypes(layers []v1.Layer) (manifest, config types.MediaType, overrides []types.MediaType, err error) {
	overrides = make([]types.MediaType, len(layers))
	oci := false
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return "", "", nil, fmt.Errorf("reading layer media type: %w", err)
		}
		if ociOnly(mt) {
			oci = true
		}
	}
	if !oci {
		for i, l := range layers {
			if mt, _ := l.MediaType(); mt == types.OCIUncompressedLayer {
				// A layer this build wrote, still a plain tar: schema 2 has its own name
				// for one, which the outputs keep or replace when they compress it.
				overrides[i] = types.DockerUncompressedLayer
			}
		}
		return types.DockerManifestSchema2, types.DockerConfigJSON, overrides, nil
	}
	for i, l := range layers {
		mt, _ := l.MediaType()
		overrides[i] = ociLayerType(mt)
	}
	return types.OCIManifestSchema1, types.OCIConfigJSON, overrides, nil
}

// ociOnly reports whether a layer media type has no Docker schema 2 equivalent.
func ociOnly(mt types.MediaType) bool {
	switch mt {
	case types.OCILayerZStd, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return true
	}
	return false
}

// ociLayerType names a Docker layer media type in OCI terms (the bytes are the
// same), or returns "" for a type that needs no renaming.
func ociLayerType(mt types.MediaType) types.MediaType {
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
