package apiserver

import (
	"context"
	"net/http"
	"time"

	"github.com/kiln-build/kiln/builder"
)

// systemDF is GET /system/df's answer, dockerd 20.10's DiskUsage in its field order.
// kiln has no containers and no volumes: those lists are always empty.
type systemDF struct {
	LayersSize  int64              `json:"LayersSize"`
	Images      []imageSummary     `json:"Images"`
	Containers  []struct{}         `json:"Containers"`
	Volumes     []struct{}         `json:"Volumes"`
	BuildCache  []buildCacheRecord `json:"BuildCache"`
	BuilderSize int64              `json:"BuilderSize"`
}

// buildCacheRecord is one BuildCache element as API 1.41 has it.
type buildCacheRecord struct {
	ID          string     `json:"ID"`
	Parent      string     `json:"Parent"`
	Type        string     `json:"Type"`
	Description string     `json:"Description"`
	InUse       bool       `json:"InUse"`
	Shared      bool       `json:"Shared"`
	Size        int64      `json:"Size"`
	CreatedAt   time.Time  `json:"CreatedAt"`
	LastUsedAt  *time.Time `json:"LastUsedAt"`
	UsageCount  int        `json:"UsageCount"`
}

// cacheUsage is a build cache that can list its entries (builder.LocalCache).
type cacheUsage interface {
	Usage(ctx context.Context) ([]builder.CacheRecord, error)
}

// systemDiskUsage answers GET /system/df (docker system df [-v]): the store's images
// with their sizes and the part of it they share with other images (layers are
// counted once in LayersSize), and as build cache the step cache's entries and the
// base cache's images.
func (s *Server) systemDiskUsage(w http.ResponseWriter, r *http.Request) {
	body := systemDF{Images: []imageSummary{}, Containers: []struct{}{}, Volumes: []struct{}{}, BuildCache: []buildCacheRecord{}}
	if s.store != nil {
		images, err := s.store.List()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "listing images: "+err.Error())
			return
		}
		users := map[string]int{} // layer digest → images using it
		sizes := map[string]int64{}
		for _, im := range images {
			for _, l := range im.Layers {
				users[l.Digest.String()]++
				sizes[l.Digest.String()] = l.Size
			}
		}
		for _, size := range sizes {
			body.LayersSize += size
		}
		for _, im := range images {
			sum := imageSummary{
				Created:     im.Created.Unix(),
				ID:          im.ID.String(),
				Labels:      im.Labels,
				RepoDigests: im.RepoDigests,
				RepoTags:    im.RepoTags,
				Size:        im.Size,
			}
			for _, l := range im.Layers {
				if users[l.Digest.String()] > 1 {
					sum.SharedSize += l.Size
				}
			}
			if sum.RepoTags == nil && sum.RepoDigests == nil {
				sum.RepoTags, sum.RepoDigests = []string{"<none>:<none>"}, []string{"<none>@<none>"}
			}
			if !versionAtLeast(r.Context(), "1.44") {
				size := im.Size
				sum.VirtualSize = &size
			}
			body.Images = append(body.Images, sum)
		}
	}
	var records []builder.CacheRecord
	if c, ok := s.build.Workspace.Cache.(cacheUsage); ok {
		steps, err := c.Usage(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "reading the build cache: "+err.Error())
			return
		}
		records = append(records, steps...)
	}
	if dir := s.build.Workspace.BaseCache; dir != "" {
		bases, err := builder.BaseCacheUsage(dir)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "reading the base-image cache: "+err.Error())
			return
		}
		records = append(records, bases...)
	}
	if dir := s.build.Workspace.MountCacheDir; dir != "" {
		mounts, err := builder.MountCacheUsage(dir)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "reading the cache mounts: "+err.Error())
			return
		}
		records = append(records, mounts...)
	}
	for _, rec := range records {
		last := rec.LastUsedAt
		body.BuildCache = append(body.BuildCache, buildCacheRecord{
			ID:          rec.ID,
			Type:        rec.Type,
			Description: rec.Description,
			Shared:      rec.Shared,
			Size:        rec.Size,
			CreatedAt:   rec.CreatedAt,
			LastUsedAt:  &last,
		})
		if !rec.Shared {
			body.BuilderSize += rec.Size
		}
	}
	replyJSON(w, http.StatusOK, body)
}
