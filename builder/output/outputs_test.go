package output_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/builder/output"
)

// TestWrite checks the order every front door gets from Write: the files, then the
// pushes, then the digest files, which exist only when the pushes succeeded.
func TestWrite(t *testing.T) {
	t.Parallel()
	img := randomImage(t)
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		registry string // "" serves one
		want     []string
		wantErr  bool
	}{
		{name: "pushed", want: []string{"writing tarball", "writing layout", "pushing", fmt.Sprintf("pushed %s %d", digest, len(raw))}},
		{name: "push fails", registry: "127.0.0.1:1", want: []string{"writing tarball", "writing layout", "pushing"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host := tt.registry
			if host == "" {
				host = newRegistry(t, nil)
			}
			tag, err := name.NewTag(host + "/app:1")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			spec := output.Spec{
				Names:   []name.Tag{tag},
				Tarball: filepath.Join(dir, "image.tar"), Layout: filepath.Join(dir, "layout"),
				Push:       []name.Reference{tag},
				DigestFile: filepath.Join(dir, "digest"),
			}
			var got []string
			err = output.Write(context.Background(), img, spec, func(e output.Event) {
				switch e := e.(type) {
				case output.Writing:
					got = append(got, "writing "+e.Kind)
				case output.Pushing:
					got = append(got, "pushing")
				case output.Pushed:
					got = append(got, fmt.Sprintf("pushed %s %d", e.Digest, e.Size))
				}
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Write: %v, want an error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			b, err := os.ReadFile(spec.DigestFile)
			switch {
			case tt.wantErr && err == nil:
				t.Error("a digest file was written although the push failed")
			case !tt.wantErr && string(b) != digest.String():
				t.Errorf("digest file %q (%v), want %s", b, err, digest)
			}
		})
	}
}
