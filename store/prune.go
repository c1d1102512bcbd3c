package store

import (
	"context"
	"sort"
)

// PruneOption configures Prune.
type PruneOption func(*pruneSettings)

type pruneSettings struct {
	all   bool
	match func(Image) bool
}

// PruneAll removes tagged images too, not only dangling ones (docker image prune -a).
func PruneAll() PruneOption { return func(p *pruneSettings) { p.all = true } }

// PruneMatching removes only images match accepts (filters such as label= and
// until=). match runs with the store locked and must not call the store.
func PruneMatching(match func(Image) bool) PruneOption {
	return func(p *pruneSettings) { p.match = match }
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Records        []DeleteRecord
	SpaceReclaimed int64 // bytes of blobs removed from disk
}

// Prune removes dangling images (every image, with PruneAll) that the options accept,
// with their references, then the blobs no image uses any more.
func (s *Store) Prune(ctx context.Context, opts ...PruneOption) (PruneReport, error) {
	var set pruneSettings
	for _, o := range opts {
		o(&set)
	}
	var rep PruneReport
	err := s.update(ctx, func(ix *index) (bool, error) {
		rep.Records = nil
		ids := make([]string, 0, len(ix.Images))
		for id := range ix.Images {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			im := describe(ix, id)
			if (!set.all && !im.Dangling()) || (set.match != nil && !set.match(im)) {
				continue
			}
			rep.Records = append(rep.Records, removeAllRefs(ix, id)...)
			delete(ix.Images, id)
			rep.Records = append(rep.Records, DeleteRecord{Deleted: id})
		}
		pruneContentSizes(ix)
		return len(rep.Records) > 0, nil
	})
	if err != nil {
		return PruneReport{}, err
	}
	// Space reclaimed is the point of a prune: wait for holds to end.
	rep.SpaceReclaimed, err = s.CollectGarbage(ctx)
	return rep, err
}
