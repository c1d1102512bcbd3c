package copier

import (
	"context"
	"io"

	"github.com/kiln-build/kiln/snapshot"
)

// untar extracts the uncompressed tar stream r into dest (an image path) with the
// snapshot package's path-safe extractor, recording what it writes as touched.
func (c *copier) untar(ctx context.Context, dest string, r io.Reader) error {
	return snapshot.Extract(ctx, c.dstRoot, dest, r,
		snapshot.WithWhiteouts(false),
		snapshot.WithTouched(func(p string) { c.touched[p] = struct{}{} }),
	)
}
