package output_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder/output"
)

// untar writes the archive's files under dir and returns their names in order.
func untar(t *testing.T, b []byte, dir string) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		p := filepath.Join(dir, hdr.Name)
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteArchive(t *testing.T) {
	t.Parallel()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		format     output.ArchiveFormat
		names      []string
		wantNames  []string // io.containerd.image.name per index entry
		wantRefs   []string // org.opencontainers.image.ref.name per index entry
		wantTags   []string // manifest.json RepoTags (docker only)
		wantDocker bool
	}{
		{name: "oci unnamed", format: output.ArchiveOCI, wantNames: []string{""}, wantRefs: []string{""}},
		{name: "oci named", format: output.ArchiveOCI, names: []string{"app:v1", "127.0.0.1:5000/x/app"},
			wantNames: []string{"docker.io/library/app:v1", "127.0.0.1:5000/x/app:latest"}, wantRefs: []string{"v1", "latest"}},
		{name: "docker named", format: output.ArchiveDocker, names: []string{"app:v1", "reg.test/a/b:2"},
			wantNames: []string{"docker.io/library/app:v1", "reg.test/a/b:2"}, wantRefs: []string{"v1", "2"},
			wantTags: []string{"app:v1", "reg.test/a/b:2"}, wantDocker: true},
		{name: "docker unnamed", format: output.ArchiveDocker, wantNames: []string{""}, wantRefs: []string{""},
			wantTags: []string{}, wantDocker: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := output.WriteArchive(&buf, img, tt.format, tt.names, created); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			entries := untar(t, buf.Bytes(), dir)
			if !sort.StringsAreSorted(entries) {
				t.Errorf("entries are not sorted: %v", entries)
			}
			_, err := os.Stat(filepath.Join(dir, "manifest.json"))
			if got := err == nil; got != tt.wantDocker {
				t.Errorf("manifest.json present = %v, want %v", got, tt.wantDocker)
			}

			// The OCI layout reads back with ggcr and holds the same image.
			idx, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var gotNames, gotRefs []string
			for _, d := range im.Manifests {
				if d.Digest != digest {
					t.Errorf("index entry digest %s, want %s", d.Digest, digest)
				}
				if d.Annotations["org.opencontainers.image.created"] != "2026-01-02T03:04:05Z" {
					t.Errorf("created annotation = %q", d.Annotations["org.opencontainers.image.created"])
				}
				gotNames = append(gotNames, d.Annotations["io.containerd.image.name"])
				gotRefs = append(gotRefs, d.Annotations["org.opencontainers.image.ref.name"])
			}
			if diff := cmp.Diff(tt.wantNames, gotNames); diff != "" {
				t.Errorf("image names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRefs, gotRefs); diff != "" {
				t.Errorf("ref names (-want +got):\n%s", diff)
			}
			back, err := idx.Image(digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(back); err != nil {
				t.Errorf("the layout's image does not validate: %v", err)
			}
			if !tt.wantDocker {
				return
			}

			// docker load's manifest.json: the tags, and a docker-archive ggcr reads.
			var mf []struct{ RepoTags []string }
			b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &mf); err != nil || len(mf) != 1 {
				t.Fatalf("manifest.json = %s (%v)", b, err)
			}
			if diff := cmp.Diff(tt.wantTags, mf[0].RepoTags); diff != "" {
				t.Errorf("RepoTags (-want +got):\n%s", diff)
			}
			var tag *name.Tag
			if len(tt.wantTags) > 0 {
				tg := mustTag(t, tt.wantTags[0])
				tag = &tg
			}
			arch := filepath.Join(t.TempDir(), "a.tar")
			if err := os.WriteFile(arch, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			timg, err := tarball.ImageFromPath(arch, tag)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(timg); err != nil {
				t.Errorf("the docker-archive does not validate: %v", err)
			}
			want, _ := img.ConfigName()
			if got, _ := timg.ConfigName(); got != want {
				t.Errorf("docker-archive config %s, want %s", got, want)
			}
		})
	}
}

// TestWriteArchiveBadName checks that a name Docker would not accept is refused
// before anything is written.
func TestWriteArchiveBadName(t *testing.T) {
	t.Parallel()
	img, err := random.Image(16, 1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := output.WriteArchive(&buf, img, output.ArchiveDocker, []string{"app:bad tag!"}, time.Now()); err == nil {
		t.Fatal("no error for an invalid name")
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written before the error", buf.Len())
	}
}
