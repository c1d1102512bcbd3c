package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTagUntag(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	id := put(t, s, testImage(t, time.Unix(100, 0), nil), "a")
	if err := s.Tag(ctx, "a", mustTag(t, "127.0.0.1:5000/b:2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "nope", mustTag(t, "c")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tag of a missing image: %v", err)
	}
	_, im, _ := s.Resolve("127.0.0.1:5000/b:2")
	if im == nil || im.ID != id {
		t.Fatalf("tag does not resolve: %+v", im)
	}
	if err := s.Untag(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Untag(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Untag: %v", err)
	}
	_, im, _ = s.Resolve(id.String())
	if !cmp.Equal(im.RepoTags, []string{"127.0.0.1:5000/b:2"}) {
		t.Errorf("tags after Untag: %v", im.RepoTags)
	}
}
