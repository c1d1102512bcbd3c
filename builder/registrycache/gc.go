package registrycache

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// stepTag matches the tags of cache entries: a cache key in hex (kiln's and kaniko's
// scheme). Other tags of the repository are never touched.
var stepTag = regexp.MustCompile(`^[0-9a-f]{64}$`)

// GCReport says what GC found and did.
type GCReport struct {
	// Tags is the number of cache entries (tags of 64 hex digits) listed.
	Tags int
	// Deleted lists the tags whose manifests were deleted, Kept counts the others.
	Deleted []string
	Kept    int
}

// GC deletes the cache entries of repo created more than ttl before now (the cache
// image's config.created, what a lookup's --cache-ttl compares): it lists the tags,
// reads each entry's config and deletes the manifest by digest through the registry
// API (the registry must allow deletes: distribution's storage.delete.enabled). The
// registry's own garbage collection frees the blobs afterwards. An entry that cannot
// be read is kept and reported; the other entries are still handled.
func GC(ctx context.Context, repo name.Repository, ttl time.Duration, now time.Time, opts ...remote.Option) (GCReport, error) {
	var rep GCReport
	if ttl <= 0 {
		return rep, fmt.Errorf("cache TTL %s: must be more than 0", ttl)
	}
	opts = append(opts, remote.WithContext(ctx))
	tags, err := remote.List(repo, opts...)
	if err != nil {
		if notFound(err) {
			return rep, nil // nothing was ever stored
		}
		return rep, fmt.Errorf("listing the tags of %s: %w", repo, err)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
	)
	for _, tag := range tags {
		if !stepTag.MatchString(tag) {
			continue
		}
		rep.Tags++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			deleted, err := expire(repo.Tag(tag), ttl, now, opts)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
				rep.Kept++
			case deleted:
				rep.Deleted = append(rep.Deleted, tag)
			default:
				rep.Kept++
			}
		}()
	}
	wg.Wait()
	return rep, errors.Join(errs...)
}

// expire deletes the entry at ref when it is older than ttl.
func expire(ref name.Tag, ttl time.Duration, now time.Time, opts []remote.Option) (bool, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		if notFound(err) {
			return false, nil // deleted meanwhile, with a manifest another tag shared
		}
		return false, fmt.Errorf("reading %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return false, fmt.Errorf("reading the config of %s: %w", ref, err)
	}
	if now.Sub(cf.Created.Time) <= ttl {
		return false, nil
	}
	if err := remote.Delete(ref.Context().Digest(desc.Digest.String()), opts...); err != nil && !notFound(err) {
		return false, fmt.Errorf("deleting %s (%s): %w", ref, desc.Digest, err)
	}
	// distribution drops the manifest's tags with it; registries that keep tags apart
	// (go-containerregistry's, OCI 1.1's tag deletion) are asked to drop the tag too.
	if _, err := remote.Head(ref, opts...); err == nil {
		if err := remote.Delete(ref, opts...); err != nil && !notFound(err) {
			return false, fmt.Errorf("deleting the tag %s: %w", ref, err)
		}
	}
	return true, nil
}
