package store

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Tag points newTag at the image ref names, moving it from any image it named.
func (s *Store) Tag(ctx context.Context, ref string, newTag name.Tag) error {
	key, err := tagKey(newTag)
	if err != nil {
		return fmt.Errorf("store: tag %s: %w", newTag, err)
	}
	return s.update(ctx, func(ix *index) (bool, error) {
		id, err := resolveIn(ix, ref)
		if err != nil {
			return false, err
		}
		ix.Tags[key] = id
		ix.Images[id].LastTagTime = s.now().UTC()
		return true, nil
	})
}

// Untag removes one tag (any spelling Docker accepts); the image stays, dangling if
// that was its last tag.
func (s *Store) Untag(ctx context.Context, tag string) error {
	tagged, err := parseTagged(tag)
	if err != nil {
		return err
	}
	return s.update(ctx, func(ix *index) (bool, error) {
		if _, ok := ix.Tags[tagged.String()]; !ok {
			return false, notFoundError{reference.FamiliarString(tagged)}
		}
		delete(ix.Tags, tagged.String())
		return true, nil
	})
}

// AddRepoDigest records that the image id is known to a registry as ref
// (repo@sha256:…), e.g. after a push; `docker images --digests` shows it.
func (s *Store) AddRepoDigest(ctx context.Context, id v1.Hash, ref name.Digest) error {
	key := dockerString(ref)
	if _, err := reference.ParseNormalizedNamed(key); err != nil {
		return invalidReferenceError{err}
	}
	return s.update(ctx, func(ix *index) (bool, error) {
		rec := ix.Images[id.String()]
		if rec == nil {
			return false, notFoundError{id.String()}
		}
		if slices.Contains(rec.RepoDigests, key) {
			return false, nil
		}
		rec.RepoDigests = append(rec.RepoDigests, key)
		sort.Strings(rec.RepoDigests)
		return true, nil
	})
}
