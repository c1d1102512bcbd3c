package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// testImage returns a random image with the given labels and creation time.
func testImage(t *testing.T, created time.Time, labels map[string]string) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	cfg.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := ParseTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func put(t *testing.T, s *Store, img v1.Image, tags ...string) v1.Hash {
	t.Helper()
	var ts []name.Tag
	for _, tg := range tags {
		ts = append(ts, mustTag(t, tg))
	}
	id, err := s.Put(context.Background(), img, ts...)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return id
}

func TestPutResolve(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	img := testImage(t, time.Unix(1700000000, 0), map[string]string{"a": "b"})
	id := put(t, s, img, "busybox", "127.0.0.1:5000/app:1", "u/x:2")
	if want, _ := img.ConfigName(); id != want {
		t.Fatalf("Put returned %s, want the config digest %s", id, want)
	}
	other := put(t, s, testImage(t, time.Unix(1600000000, 0), nil), "other:1")
	manifest, _ := img.Digest()
	dref, err := name.NewDigest("127.0.0.1:5000/app@" + manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddRepoDigest(ctx, id, dref); err != nil {
		t.Fatalf("AddRepoDigest: %v", err)
	}

	hexID := strings.TrimPrefix(id.String(), "sha256:")
	tests := []struct {
		ref     string
		want    v1.Hash
		wantErr error
		msg     string
	}{
		{ref: "busybox", want: id},
		{ref: "busybox:latest", want: id},
		{ref: "docker.io/library/busybox:latest", want: id},
		{ref: "library/busybox", want: id},
		{ref: "127.0.0.1:5000/app:1", want: id},
		{ref: "u/x:2", want: id},
		{ref: "docker.io/u/x:2", want: id},
		{ref: "other:1", want: other},
		{ref: id.String(), want: id},
		{ref: hexID, want: id},
		{ref: hexID[:12], want: id},
		{ref: hexID[:4], want: id},
		{ref: "sha256:" + hexID[:8], want: id},
		{ref: "127.0.0.1:5000/app@" + manifest.String(), want: id},
		{ref: hexID[:3], wantErr: ErrNotFound, msg: "No such image: " + hexID[:3] + ":latest"},
		{ref: "busybox:2", wantErr: ErrNotFound, msg: "No such image: busybox:2"},
		{ref: "nope", wantErr: ErrNotFound, msg: "No such image: nope:latest"},
		{ref: "sha256:" + hex64('0'), wantErr: ErrNotFound, msg: "No such image: sha256:" + hex64('0')},
		{ref: "127.0.0.1:5000/other@sha256:" + hex64('1'), wantErr: ErrNotFound},
		{ref: "Busybox", wantErr: ErrInvalidReference},
		{ref: "a b", wantErr: ErrInvalidReference},
	}
	for _, tt := range tests {
		gotImg, got, err := s.Resolve(tt.ref)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Resolve(%q) error = %v, want %v", tt.ref, err, tt.wantErr)
			}
			if tt.msg != "" && (err == nil || err.Error() != tt.msg) {
				t.Errorf("Resolve(%q) error = %v, want message %q", tt.ref, err, tt.msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.ref, err)
			continue
		}
		if got.ID != tt.want {
			t.Errorf("Resolve(%q) = %s, want %s", tt.ref, got.ID, tt.want)
		}
		if gotID, _ := gotImg.ConfigName(); gotID != tt.want {
			t.Errorf("Resolve(%q) image has ID %s, want %s", tt.ref, gotID, tt.want)
		}
	}

	_, im, err := s.Resolve("busybox")
	if err != nil {
		t.Fatal(err)
	}
	want := &Image{
		ID:          id,
		Manifest:    manifest,
		RepoTags:    []string{"127.0.0.1:5000/app:1", "busybox:latest", "u/x:2"},
		RepoDigests: []string{"127.0.0.1:5000/app@" + manifest.String()},
		Created:     time.Unix(1700000000, 0).UTC(),
		Size:        2048, // two layers of one 1024-byte file each
		Labels:      map[string]string{"a": "b"},
		LastTagTime: im.LastTagTime,
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		want.Layers = append(want.Layers, Layer{Digest: d, Size: 1024})
	}
	if diff := cmp.Diff(want, im); diff != "" {
		t.Errorf("Resolve(busybox) (-want +got):\n%s", diff)
	}
	if im.LastTagTime.IsZero() {
		t.Error("LastTagTime not set by a tagged Put")
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	t.Parallel()
	ix := newIndex()
	ix.Images["sha256:abcd1"+hex64('0')[5:]] = &imageRecord{}
	ix.Images["sha256:abcd2"+hex64('0')[5:]] = &imageRecord{}
	if _, err := resolveIn(ix, "abcd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ambiguous prefix: error = %v, want ErrNotFound", err)
	}
	if id, err := resolveIn(ix, "abcd1"); err != nil || !strings.HasPrefix(id, "sha256:abcd1") {
		t.Errorf("resolveIn(abcd1) = %q, %v", id, err)
	}
}

func TestPutMovesTagAndKeepsOldImage(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	first := put(t, s, testImage(t, time.Unix(100, 0), nil), "app:1", "app:keep")
	second := put(t, s, testImage(t, time.Unix(200, 0), nil), "app:1")
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[v1.Hash][]string{}
	for _, im := range list {
		got[im.ID] = im.RepoTags
	}
	want := map[v1.Hash][]string{first: {"app:keep"}, second: {"app:1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tags after moving app:1 (-want +got):\n%s", diff)
	}
	if list[0].ID != second {
		t.Errorf("List is not newest first: %v", list)
	}
	// Moving its last tag away leaves the first image dangling, not deleted.
	put(t, s, testImage(t, time.Unix(300, 0), nil), "app:keep")
	_, im, err := s.Resolve(first.String())
	if err != nil {
		t.Fatal(err)
	}
	if !im.Dangling() {
		t.Errorf("first image still tagged: %v", im.RepoTags)
	}
}

func TestPutSameImageTwice(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	img := testImage(t, time.Unix(100, 0), nil)
	id1 := put(t, s, img, "a")
	id2 := put(t, s, img, "b")
	if id1 != id2 {
		t.Fatalf("same image stored under %s and %s", id1, id2)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !cmp.Equal(list[0].RepoTags, []string{"a:latest", "b:latest"}) {
		t.Errorf("List = %+v, want one image tagged a and b", list)
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir)
	img := testImage(t, time.Unix(100, 0), map[string]string{"k": "v"})
	id := put(t, s, img, "app:1", "127.0.0.1:5000/app:1")
	before, err := s.List()
	if err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir)
	after, err := s2.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("List after reopening (-before +after):\n%s", diff)
	}
	got, _, err := s2.Resolve("app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("reopened image does not validate: %v", err)
	}
	wantDigest, _ := img.Digest()
	if d, _ := got.Digest(); d != wantDigest {
		t.Errorf("reopened manifest digest %s, want %s", d, wantDigest)
	}
	if gotID, _ := got.ConfigName(); gotID != id {
		t.Errorf("reopened ID %s, want %s", gotID, id)
	}

	// The directory is an OCI layout that go-containerregistry reads, tags included.
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, d := range m.Manifests {
		refs = append(refs, d.Annotations[refNameAnnotation])
		if d.Digest != wantDigest {
			t.Errorf("index.json names %s, want %s", d.Digest, wantDigest)
		}
	}
	if diff := cmp.Diff([]string{"127.0.0.1:5000/app:1", "docker.io/library/app:1"}, refs); diff != "" {
		t.Errorf("index.json ref names (-want +got):\n%s", diff)
	}
	li, err := p.Image(wantDigest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(li); err != nil {
		t.Errorf("layout image does not validate: %v", err)
	}
}

func TestOpenRefusesNewerIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, indexFile), []byte(`{"version":99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("Open with a newer index: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, indexFile), []byte(`{"vers`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), indexFile) {
		t.Errorf("Open with a truncated index: %v", err)
	}
}

func TestPutRejectsCorruptLayer(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	img := testImage(t, time.Unix(100, 0), nil)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	// A blob file of the right name and size but the wrong content is rewritten;
	// content that does not match its digest is never renamed into place.
	size, _ := layers[0].Size()
	if err := os.WriteFile(s.blobPath(d), make([]byte, size+1), 0o644); err != nil {
		t.Fatal(err)
	}
	put(t, s, img, "ok")
	got, _, err := s.Resolve("ok")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("image with a rewritten blob does not validate: %v", err)
	}

	err = s.writeBlob(context.Background(), v1.Hash{Algorithm: "sha256", Hex: hex64('d')}, -1, readCloser("not the layer"))
	if err == nil || !strings.Contains(err.Error(), "content has digest") {
		t.Errorf("writeBlob with the wrong content: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, tmpDir))
	if len(entries) != 0 {
		t.Errorf("tmp/ keeps %d files after a failed blob write", len(entries))
	}
}

func TestPutCancelled(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, testImage(t, time.Unix(1, 0), nil), mustTag(t, "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("cancelled Put stored %v", list)
	}
}
