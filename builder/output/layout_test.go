package output_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder/output"
)

// indexEntries lists the layout's index.json as "digest name tag" lines.
func indexEntries(t *testing.T, path string) []string {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(path)
	if err != nil {
		t.Fatalf("reading layout %s: %v", path, err)
	}
	if err := validate.Index(ii); err != nil {
		t.Errorf("layout index does not validate: %v", err)
	}
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range m.Manifests {
		img, err := ii.Image(d.Digest)
		if err != nil {
			t.Fatalf("image %s: %v", d.Digest, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("image %s does not validate: %v", d.Digest, err)
		}
		out = append(out, strings.TrimSpace(d.Digest.Hex[:12]+" "+
			d.Annotations["io.containerd.image.name"]+" "+d.Annotations["org.opencontainers.image.ref.name"]))
	}
	return out
}

func TestWriteLayout(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "layout")
	first, second := randomImage(t), randomImage(t)
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	h1, h2 := d1.Hex[:12], d2.Hex[:12]
	v1 := mustRef(t, "registry.test/app:v1")
	latest := mustRef(t, "registry.test/app")

	steps := []struct {
		name  string
		write func() error
		want  []string
	}{
		{
			name:  "new layout with two names",
			write: func() error { return output.WriteLayout(dir, first, v1, latest) },
			want: []string{
				h1 + " registry.test/app:v1 v1",
				h1 + " registry.test/app:latest latest",
			},
		},
		{
			name:  "a name moves to a new image",
			write: func() error { return output.WriteLayout(dir, second, v1) },
			want: []string{
				h1 + " registry.test/app:latest latest",
				h2 + " registry.test/app:v1 v1",
			},
		},
		{
			name:  "unnamed image is appended",
			write: func() error { return output.WriteLayout(dir, first) },
			want: []string{
				h1 + " registry.test/app:latest latest",
				h2 + " registry.test/app:v1 v1",
				h1,
			},
		},
		{
			name: "digest reference has no tag",
			write: func() error {
				return output.WriteLayout(dir, second, mustRef(t, "registry.test/app@"+d2.String()))
			},
			want: []string{
				h1 + " registry.test/app:latest latest",
				h2 + " registry.test/app:v1 v1",
				h1,
				h2 + " registry.test/app@" + d2.String(),
			},
		},
	}
	// Steps build on one another, so they run in order.
	for _, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("%s: WriteLayout: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, indexEntries(t, dir)); diff != "" {
			t.Errorf("%s: index.json (-want +got):\n%s", s.name, diff)
		}
	}
}

func TestWriteLayoutRefusesForeignDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := output.WriteLayout(dir, randomImage(t), name.Reference(mustTag(t, "app:v1")))
	if err == nil {
		t.Fatal("WriteLayout into a non-layout directory succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
}
