package apiserver

import (
	"net/http"

	"github.com/kiln-build/kiln/store"
)

// imageSummary is one element of GET /images/json, dockerd 20.10's ImageSummary in its
// (alphabetical) field order. Containers and SharedSize are -1: dockerd sends -1 when
// not asked to count, and kiln runs no containers.
type imageSummary struct {
	Containers  int64             `json:"Containers"`
	Created     int64             `json:"Created"`
	ID          string            `json:"Id"`
	Labels      map[string]string `json:"Labels"`
	ParentID    string            `json:"ParentId"`
	RepoDigests []string          `json:"RepoDigests"`
	RepoTags    []string          `json:"RepoTags"`
	SharedSize  int64             `json:"SharedSize"`
	Size        int64             `json:"Size"`
	// VirtualSize is gone from API 1.44 on; older clients still read it.
	VirtualSize *int64 `json:"VirtualSize,omitempty"`
}

// listImages answers GET /images/json (docs/server.md, "Images") with dockerd's filters:
// reference (shell patterns on the familiar name, which also narrow the RepoTags and
// RepoDigests shown), dangling, label / label!, before and since.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = filters.validate("reference", "dangling", "label", "label!", "before", "since")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	danglingOnly, danglingGiven, err := filters.boolFilter("dangling")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	before, since, err := s.createdBounds(filters)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	images, err := st.List()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	patterns := filters.values("reference")
	out := []imageSummary{}
	for _, im := range images {
		if !filters.matchLabels(im.Labels) ||
			(before != nil && !im.Created.Before(before.Created)) ||
			(since != nil && !im.Created.After(since.Created)) {
			continue
		}
		tags, err := matchingRefs(patterns, im.RepoTags)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		digests, err := matchingRefs(patterns, im.RepoDigests)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if len(tags) == 0 && len(digests) == 0 {
			if (danglingGiven && !danglingOnly) || len(patterns) > 0 {
				continue
			}
			// API 1.41 shows a dangling image with these placeholders.
			tags, digests = []string{"<none>:<none>"}, []string{"<none>@<none>"}
		} else if danglingOnly && len(tags) > 0 {
			continue
		}
		sum := imageSummary{
			Containers:  -1,
			Created:     im.Created.Unix(),
			ID:          im.ID.String(),
			Labels:      im.Labels,
			RepoDigests: digests,
			RepoTags:    tags,
			SharedSize:  -1,
			Size:        im.Size,
		}
		if !versionAtLeast(r.Context(), "1.44") {
			size := im.Size
			sum.VirtualSize = &size
		}
		out = append(out, sum)
	}
	replyJSON(w, http.StatusOK, out)
}

// createdBounds resolves the before= and since= filters to the images they name.
func (s *Server) createdBounds(f filterArgs) (before, since *store.Image, err error) {
	for _, b := range []struct {
		key string
		dst **store.Image
	}{{"before", &before}, {"since", &since}} {
		for _, ref := range f.values(b.key) {
			_, im, err := s.store.Resolve(ref)
			if err != nil {
				return nil, nil, err
			}
			*b.dst = im
		}
	}
	return before, since, nil
}

// matchingRefs keeps the references that match any pattern (all when there are none).
// nil means none: dockerd sends null, not [].
func matchingRefs(patterns, refs []string) ([]string, error) {
	if len(patterns) == 0 {
		return refs, nil
	}
	var out []string
	for _, ref := range refs {
		for _, p := range patterns {
			ok, err := store.MatchReference(p, ref)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, ref)
				break
			}
		}
	}
	return out, nil
}
