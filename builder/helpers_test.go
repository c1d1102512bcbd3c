package builder_test

import (
	"context"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder/output"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// outputImage is img as the outputs send it: its plain-tar layers gzipped (the build
// writes plain tars; go-containerregistry's validate reads layers as gzip).
func outputImage(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	comp, err := output.NewCompressor(t.TempDir(), output.Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := comp.CompressImage(context.Background(), img)
	if err != nil {
		t.Fatalf("compressing: %v", err)
	}
	return out
}
