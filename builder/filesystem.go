package builder

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ExtractFilesystem writes the final filesystem of img into dir, an empty directory:
// its layers applied in order, whiteouts and opaque directories honoured, with the
// same confined extraction a build's root gets. Front doors use it for outputs that
// are a filesystem rather than an image (BuildKit's -o type=local and type=tar).
// Layers stream from img one at a time.
func ExtractFilesystem(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading the image's layers: %w", err)
	}
	for _, l := range layers {
		if err := extractLayer(ctx, dir, l, nil, nil); err != nil {
			return err
		}
	}
	return nil
}
