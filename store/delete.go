package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// ErrConflict is matched (errors.Is) when a deletion needs force; the message is
// dockerd's ("conflict: unable to delete … (must be forced) - …").
var ErrConflict = errors.New("conflict")

type conflictError struct{ msg string }

func (e conflictError) Error() string        { return e.msg }
func (e conflictError) Is(target error) bool { return target == ErrConflict }

// DeleteRecord is one step of a deletion, as `docker rmi` prints it: a reference
// removed (Untagged, familiar) or an image removed (Deleted, its ID).
type DeleteRecord struct {
	Untagged string
	Deleted  string
}

// DeleteOption configures Delete.
type DeleteOption func(*deleteSettings)

type deleteSettings struct{ force, noPrune bool }

// Force deletes an image named by ID even though several repositories refer to it
// (docker rmi -f).
func Force() DeleteOption { return func(d *deleteSettings) { d.force = true } }

// NoPrune keeps the deleted image's blobs on disk (docker rmi --no-prune) until the
// next garbage collection.
func NoPrune() DeleteOption { return func(d *deleteSettings) { d.noPrune = true } }

// Delete removes ref as dockerd's DELETE /images/{name} does. By name (tag or
// repo@digest) it removes that reference, and the repository's digests with the
// repository's last tag; the image goes only when no reference is left. By ID it
// removes the image and all its references, which needs Force when they span several
// repositories. Unless NoPrune, blobs no other image uses are removed, right away
// when no image is being stored or read under a Hold, else by a later collection.
func (s *Store) Delete(ctx context.Context, ref string, opts ...DeleteOption) ([]DeleteRecord, error) {
	var set deleteSettings
	for _, o := range opts {
		o(&set)
	}
	var records []DeleteRecord
	err := s.update(ctx, func(ix *index) (bool, error) {
		records = nil
		id, err := resolveIn(ix, ref)
		if err != nil {
			return false, err
		}
		if !isIDPrefix(id, ref) {
			records, err = untagName(ix, id, ref)
			if err != nil || len(ix.refsOf(id)) > 0 {
				return err == nil, err
			}
		} else {
			refs := ix.refsOf(id)
			if !set.force && !isSingleReference(refs) {
				return false, conflictError{fmt.Sprintf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortHex(id))}
			}
			records = removeAllRefs(ix, id)
		}
		delete(ix.Images, id)
		pruneContentSizes(ix)
		records = append(records, DeleteRecord{Deleted: id})
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if !set.noPrune {
		if _, err := s.tryCollectGarbage(); err != nil {
			return records, err
		}
	}
	return records, nil
}

// untagName removes the reference ref (which resolves to id) and returns the records.
// Removing a repository's last tag also removes that repository's digests.
func untagName(ix *index, id, ref string) ([]DeleteRecord, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, invalidReferenceError{err}
	}
	rec := ix.Images[id]
	if c, ok := named.(reference.Canonical); ok {
		key := c.Name() + "@" + c.Digest().String()
		rec.RepoDigests = slices.DeleteFunc(rec.RepoDigests, func(d string) bool { return d == key })
		return []DeleteRecord{{Untagged: familiarKey(key)}}, nil
	}
	key := reference.TagNameOnly(named).String()
	delete(ix.Tags, key)
	records := []DeleteRecord{{Untagged: familiarKey(key)}}
	for _, t := range ix.tagsOf(id) {
		if repoOfKey(t) == named.Name() {
			return records, nil
		}
	}
	var keep []string
	for _, d := range rec.RepoDigests {
		if repoOfKey(d) == named.Name() {
			records = append(records, DeleteRecord{Untagged: familiarKey(d)})
			continue
		}
		keep = append(keep, d)
	}
	rec.RepoDigests = keep
	return records, nil
}

// removeAllRefs removes every tag and digest of id, in dockerd's order.
func removeAllRefs(ix *index, id string) []DeleteRecord {
	var records []DeleteRecord
	for _, r := range ix.refsOf(id) {
		delete(ix.Tags, r)
		records = append(records, DeleteRecord{Untagged: familiarKey(r)})
	}
	ix.Images[id].RepoDigests = nil
	return records
}

// isSingleReference reports whether refs are at most one tag plus digests of that
// tag's repository: deleting such an image by ID needs no force (dockerd's rule).
func isSingleReference(refs []string) bool {
	if len(refs) <= 1 {
		return true
	}
	tag := ""
	digestRepos := map[string]bool{}
	for _, r := range refs {
		if isDigestKey(r) {
			digestRepos[repoOfKey(r)] = true
			continue
		}
		if tag != "" {
			return false
		}
		tag = r
	}
	repo := repoOfKey(refs[0])
	if tag != "" {
		repo = repoOfKey(tag)
	}
	return len(digestRepos) == 1 && digestRepos[repo]
}

func isDigestKey(k string) bool { return strings.Contains(k, "@") }

// shortHex is the 12-hex-digit ID docker prints.
func shortHex(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// pruneContentSizes drops cached sizes of layers no image uses any more.
func pruneContentSizes(ix *index) {
	used := map[string]bool{}
	for _, rec := range ix.Images {
		for _, l := range rec.Layers {
			used[l] = true
		}
	}
	for d := range ix.ContentSizes {
		if !used[d] {
			delete(ix.ContentSizes, d)
		}
	}
}
