package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func readCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// deleteWorld is the situation of the rmi captures: one image tagged in three
// repositories, two of them pushed (so with repo digests).
type deleteWorld struct {
	s        *Store
	id       v1.Hash
	manifest v1.Hash
}

func newDeleteWorld(t *testing.T, tags ...string) deleteWorld {
	t.Helper()
	s := openStore(t, t.TempDir())
	img := testImage(t, time.Unix(100, 0), nil)
	id := put(t, s, img, tags...)
	m, _ := img.Digest()
	return deleteWorld{s: s, id: id, manifest: m}
}

func (w deleteWorld) addDigest(t *testing.T, repo string) {
	t.Helper()
	ref, err := name.NewDigest(repo + "@" + w.manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.s.AddRepoDigest(context.Background(), w.id, ref); err != nil {
		t.Fatal(err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	const x, y = "127.0.0.1:5010/apicap/x", "127.0.0.1:5011/apicap/y"
	tests := []struct {
		name    string
		tags    []string
		digests []string
		ref     string // "ID" and "SHORTID" stand for the image's ID
		opts    []DeleteOption
		// want lists the records; "@X"/"@Y" stand for x's/y's repo digest, "ID" for the ID.
		want     []DeleteRecord
		wantErr  error
		errMsg   string
		wantTags []string // tags left, nil when the image is gone
	}{
		{
			name: "tag of an image with other tags only untags",
			tags: []string{"apicap-basic", "apicap-basic:v2"}, ref: "apicap-basic",
			want:     []DeleteRecord{{Untagged: "apicap-basic:latest"}},
			wantTags: []string{"apicap-basic:v2"},
		},
		{
			name: "last tag of a repository also untags its digests",
			tags: []string{x + ":1", x + ":2", "apicap-basic"}, digests: []string{x}, ref: x + ":2",
			want:     []DeleteRecord{{Untagged: x + ":2"}},
			wantTags: []string{x + ":1", "apicap-basic:latest"},
		},
		{
			name: "last tag of a repository also untags its digests (capture rmi #3)",
			tags: []string{x + ":2", "apicap-basic"}, digests: []string{x}, ref: x + ":2",
			want:     []DeleteRecord{{Untagged: x + ":2"}, {Untagged: "@X"}},
			wantTags: []string{"apicap-basic:latest"},
		},
		{
			name: "last tag deletes the image",
			tags: []string{"solo"}, ref: "solo",
			want: []DeleteRecord{{Untagged: "solo:latest"}, {Deleted: "ID"}},
		},
		{
			name: "last tag with a digest of the same repository deletes the image",
			tags: []string{y}, digests: []string{y}, ref: y,
			want: []DeleteRecord{{Untagged: y + ":latest"}, {Untagged: "@Y"}, {Deleted: "ID"}},
		},
		{
			name: "a digest reference untags only the digest",
			tags: []string{y}, digests: []string{y}, ref: "@Y",
			want:     []DeleteRecord{{Untagged: "@Y"}},
			wantTags: []string{y + ":latest"},
		},
		{
			name: "by ID with references in several repositories needs force",
			tags: []string{"apicap-basic", x + ":1"}, ref: "SHORTID",
			wantErr:  ErrConflict,
			errMsg:   "conflict: unable to delete SHORTID (must be forced) - image is referenced in multiple repositories",
			wantTags: []string{x + ":1", "apicap-basic:latest"},
		},
		{
			name: "by ID with two tags of one repository needs force too",
			tags: []string{"a:1", "a:2"}, ref: "ID",
			wantErr:  ErrConflict,
			wantTags: []string{"a:1", "a:2"},
		},
		{
			name: "by ID forced removes every reference",
			tags: []string{"apicap-basic", x + ":1"}, digests: []string{x}, ref: "ID", opts: []DeleteOption{Force()},
			want: []DeleteRecord{{Untagged: x + ":1"}, {Untagged: "@X"}, {Untagged: "apicap-basic:latest"}, {Deleted: "ID"}},
		},
		{
			name: "by ID with one tag and its repository's digest needs no force",
			tags: []string{y}, digests: []string{y}, ref: "SHORTID",
			want: []DeleteRecord{{Untagged: y + ":latest"}, {Untagged: "@Y"}, {Deleted: "ID"}},
		},
		{
			name: "by ID of a dangling image",
			ref:  "ID",
			want: []DeleteRecord{{Deleted: "ID"}},
		},
		{
			name: "missing",
			tags: []string{"a"}, ref: "apicap-nope",
			wantErr: ErrNotFound, errMsg: "No such image: apicap-nope:latest",
			wantTags: []string{"a:latest"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newDeleteWorld(t, tt.tags...)
			for _, repo := range tt.digests {
				w.addDigest(t, repo)
			}
			short := shortHex(w.id.String())
			expand := func(s string) string {
				switch s {
				case "ID":
					return w.id.String()
				case "SHORTID":
					return short
				case "@X":
					return x + "@" + w.manifest.String()
				case "@Y":
					return y + "@" + w.manifest.String()
				}
				return s
			}
			got, err := w.s.Delete(context.Background(), expand(tt.ref), tt.opts...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Delete error = %v, want %v", err, tt.wantErr)
				}
				if tt.errMsg != "" && err.Error() != strings.ReplaceAll(tt.errMsg, "SHORTID", short) {
					t.Errorf("Delete error = %q, want %q", err, tt.errMsg)
				}
			} else {
				if err != nil {
					t.Fatalf("Delete: %v", err)
				}
				var want []DeleteRecord
				for _, r := range tt.want {
					want = append(want, DeleteRecord{Untagged: expand(r.Untagged), Deleted: expand(r.Deleted)})
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
			}
			_, im, err := w.s.Resolve(w.id.String())
			switch {
			case tt.wantTags == nil && tt.wantErr == nil && (len(tt.want) == 0 || tt.want[len(tt.want)-1].Deleted == ""):
				t.Fatal("test case must say which tags remain")
			case tt.wantTags == nil && tt.wantErr == nil:
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("image still there after deletion: %v %v", im, err)
				}
				blobs, _ := os.ReadDir(filepath.Join(w.s.dir, blobsDir, "sha256"))
				if len(blobs) != 0 {
					t.Errorf("%d blobs left after deleting the only image", len(blobs))
				}
			default:
				if err != nil {
					t.Fatalf("image gone: %v", err)
				}
				if diff := cmp.Diff(tt.wantTags, im.RepoTags); diff != "" {
					t.Errorf("tags left (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestDeleteKeepsSharedBlobs(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	base := testImage(t, time.Unix(100, 0), nil)
	derived := testImage(t, time.Unix(200, 0), nil)
	baseLayers, _ := base.Layers()
	derived, err := appendLayers(derived, baseLayers...)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, base, "base")
	put(t, s, derived, "derived")
	if _, err := s.Delete(context.Background(), "base"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Resolve("derived")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(got); err != nil {
		t.Errorf("derived image broken after deleting base: %v", err)
	}
}
