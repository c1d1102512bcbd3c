package output_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder/output"
)

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestWriteTarballReadsBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tags []string
	}{
		{name: "untagged"},
		{name: "one tag", tags: []string{"registry.test/app:v1"}},
		{name: "two tags", tags: []string{"registry.test/app:v1", "app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := randomImage(t)
			var tags []name.Tag
			for _, s := range tt.tags {
				tags = append(tags, mustTag(t, s))
			}
			path := filepath.Join(t.TempDir(), "image.tar")
			if err := output.WriteTarball(path, img, tags); err != nil {
				t.Fatalf("WriteTarball: %v", err)
			}

			wantID, _ := img.ConfigName()
			wantLayers, _ := img.Layers()
			reads := []*name.Tag{nil}
			for i := range tags {
				reads = append(reads, &tags[i])
			}
			if len(tags) > 1 {
				reads = reads[1:] // a multi-image lookup needs a tag
			}
			for _, tag := range reads {
				got, err := tarball.ImageFromPath(path, tag)
				if err != nil {
					t.Fatalf("reading the archive back (tag %v): %v", tag, err)
				}
				if err := validate.Image(got); err != nil {
					t.Errorf("archive image does not validate: %v", err)
				}
				if id, _ := got.ConfigName(); id != wantID {
					t.Errorf("archive image ID = %s, want %s", id, wantID)
				}
				layers, _ := got.Layers()
				if len(layers) != len(wantLayers) {
					t.Fatalf("archive has %d layers, want %d", len(layers), len(wantLayers))
				}
				for i := range layers {
					g, _ := layers[i].Digest()
					w, _ := wantLayers[i].Digest()
					if g != w {
						t.Errorf("layer %d digest = %s, want %s", i, g, w)
					}
				}
			}
			m, err := tarball.LoadManifest(func() (f io.ReadCloser, err error) { return os.Open(path) })
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != 1 || len(m[0].RepoTags) != len(tags) {
				t.Errorf("manifest.json = %+v, want one image with %d tags", m, len(tags))
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp"))
			if len(leftovers) != 0 {
				t.Errorf("temporary files left behind: %v", leftovers)
			}
		})
	}
}

func TestWriteTarballMissingDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "image.tar")
	err := output.WriteTarball(path, randomImage(t), nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("WriteTarball into a missing directory: err = %v, want one naming %s", err, path)
	}
}

// TestWriteTarballDockerLoad loads the archive into the local docker daemon, when
// one answers, and removes exactly the tag it created.
func TestWriteTarballDockerLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := exec.CommandContext(ctx, "docker", "version").Run(); err != nil {
		t.Skipf("no docker daemon answers: %v", err)
	}
	img := randomImage(t)
	id, _ := img.ConfigName()
	tag := mustTag(t, fmt.Sprintf("kiln-output-test/docker-load:%s", id.Hex[:16]))
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := output.WriteTarball(path, img, []name.Tag{tag}); err != nil {
		t.Fatalf("WriteTarball: %v", err)
	}

	out, err := exec.CommandContext(ctx, "docker", "load", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	local := tag.Context().RepositoryStr() + ":" + tag.TagStr()
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", local).CombinedOutput(); err != nil {
			t.Logf("docker rmi %s: %v\n%s", local, err, out)
		}
	})
	got, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", local).Output()
	if err != nil {
		t.Fatalf("docker image inspect %s after load: %v (load said %s)", local, err, out)
	}
	// The classic image store names an image by its config digest; the containerd
	// store by a manifest digest of its own, so only the classic case is compared.
	if gotID := string(bytes.TrimSpace(got)); gotID != id.String() {
		t.Logf("docker names %s %s (config digest %s): containerd image store?", local, gotID, id)
	}
}
