package output_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/builder/output"
)

func TestWriteDigestFiles(t *testing.T) {
	t.Parallel()
	img := randomImage(t)
	d, _ := img.Digest()
	dg := d.String()

	tests := []struct {
		name                          string
		refs                          []string
		wantDigest, wantName, wantTag string
	}{
		{
			name:       "no destinations",
			wantDigest: dg,
		},
		{
			name:       "docker hub short name",
			refs:       []string{"app"},
			wantDigest: dg,
			wantName:   "index.docker.io/library/app@" + dg + "\n",
			wantTag:    "index.docker.io/library/app:latest@" + dg + "\n",
		},
		{
			name:       "several destinations",
			refs:       []string{"registry.test:5000/team/app:v1", "registry.test:5000/team/app:v2", "other.test/app@" + dg},
			wantDigest: dg,
			wantName: "registry.test:5000/team/app@" + dg + "\n" +
				"registry.test:5000/team/app@" + dg + "\n" +
				"other.test/app@" + dg + "\n",
			wantTag: "registry.test:5000/team/app:v1@" + dg + "\n" +
				"registry.test:5000/team/app:v2@" + dg + "\n" +
				"other.test/app@" + dg + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var refs []name.Reference
			for _, s := range tt.refs {
				refs = append(refs, mustRef(t, s))
			}
			dir := filepath.Join(t.TempDir(), "sub") // parents are created
			files := []string{filepath.Join(dir, "digest"), filepath.Join(dir, "name"), filepath.Join(dir, "tag")}
			if err := output.WriteDigestFiles(img, refs, files[0], files[1], files[2]); err != nil {
				t.Fatalf("WriteDigestFiles: %v", err)
			}
			for i, want := range []string{tt.wantDigest, tt.wantName, tt.wantTag} {
				got, err := os.ReadFile(files[i])
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, string(got)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", filepath.Base(files[i]), diff)
				}
			}
		})
	}
}

func TestWriteDigestFilesSkipsUnnamedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "digest")
	if err := output.WriteDigestFiles(randomImage(t), nil, path, "", ""); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("wrote %d files, want only the digest file", len(entries))
	}
}
