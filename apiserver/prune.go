package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/store"
)

// Prefixes of the per-request scratch directories under the build state directory:
// builds' (apiserver/build.go) and image loads'. A crash leaves them behind; build
// prune removes them.
const (
	scratchPrefixBuild = "api-build-"
	scratchPrefixLoad  = "api-load-"
)

// scratchDir is where requests spool what they receive: the build state directory,
// on the same disk as builds, else the system's temporary directory.
func (s *Server) scratchDir() string {
	if d := s.build.Workspace.StateDir; d != "" {
		return d
	}
	return os.TempDir()
}

// buildPruneBody is POST /build/prune's answer. CachesDeleted lists the scratch
// directories removed (null when none, as dockerd answers).
type buildPruneBody struct {
	CachesDeleted  []string `json:"CachesDeleted"`
	SpaceReclaimed int64    `json:"SpaceReclaimed"`
}

// prunableCache is a build cache docker builder prune can empty (builder.LocalCache).
type prunableCache interface {
	PruneRecords(ctx context.Context, p builder.CachePrune) ([]builder.CacheRecord, builder.PruneReport, error)
}

// pruneBuildScratch answers POST /build/prune (docs/server.md, "Prunes"): it empties the
// step cache by builder.CachePrune's rule (entries not used within until=, least
// recently used first down to keep-storage/reserved-space, max-used-space and
// min-free-space) and removes the scratch directories a build can leave behind when
// the server died mid-build: those older than this handler (every build of this
// process removes its own), further limited by until=.
func (s *Server) pruneBuildScratch(w http.ResponseWriter, r *http.Request, started time.Time) {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = filters.validate("until")
	}
	var until time.Time
	if err == nil {
		until, err = filters.untilFilter(time.Now())
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cutoff := started
	if !until.IsZero() && until.Before(cutoff) {
		cutoff = until
	}
	body := buildPruneBody{}
	if pc, ok := s.build.Workspace.Cache.(prunableCache); ok {
		p, err := cachePruneOptions(r, until)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		_, rep, err := pc.PruneRecords(r.Context(), p)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "pruning the build cache: "+err.Error())
			return
		}
		if rep.Entries > 0 {
			body.CachesDeleted = append(body.CachesDeleted, fmt.Sprintf("%d cached build steps", rep.Entries))
		}
		body.SpaceReclaimed += rep.Bytes
	}
	if dir := s.build.Workspace.MountCacheDir; dir != "" {
		p, err := cachePruneOptions(r, until)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		removed, err := builder.PruneMountCache(dir, p)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "pruning the cache mounts: "+err.Error())
			return
		}
		for _, rec := range removed {
			body.CachesDeleted = append(body.CachesDeleted, rec.ID)
			body.SpaceReclaimed += rec.Size
		}
	}
	dir := s.build.Workspace.StateDir
	if dir == "" {
		replyJSON(w, http.StatusOK, body)
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !(strings.HasPrefix(e.Name(), scratchPrefixBuild) || strings.HasPrefix(e.Name(), scratchPrefixLoad)) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		size := diskUsage(p)
		if err := os.RemoveAll(p); err != nil {
			s.requestLog(r).WithError(err).Warn("build prune: removing a leftover scratch directory")
			continue
		}
		body.CachesDeleted = append(body.CachesDeleted, e.Name())
		body.SpaceReclaimed += size
	}
	sort.Strings(body.CachesDeleted)
	replyJSON(w, http.StatusOK, body)
}

// cachePruneOptions reads /build/prune's size bounds (keep-storage before API 1.48,
// reserved-space, max-used-space and min-free-space since) into the shared prune
// rule, with until= as its age bound. all= changes nothing: every entry of kiln's
// step cache is a plain cached step, none is dangling.
func cachePruneOptions(r *http.Request, until time.Time) (builder.CachePrune, error) {
	var p builder.CachePrune
	if !until.IsZero() {
		p.KeepDuration = time.Since(until)
	}
	q := r.URL.Query()
	for _, f := range []struct {
		name string
		dst  *int64
	}{
		{"keep-storage", &p.ReservedSpace},
		{"reserved-space", &p.ReservedSpace},
		{"max-used-space", &p.MaxUsedSpace},
		{"min-free-space", &p.MinFreeSpace},
	} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, fmt.Errorf("%s=%q: want a number of bytes", f.name, v)
		}
		if n > 0 {
			*f.dst = n
		}
	}
	return p, nil
}

// diskUsage sums the sizes of the regular files below dir.
func diskUsage(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // count what can be read
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// imagePruneBody is POST /images/prune's answer.
type imagePruneBody struct {
	ImagesDeleted  []deleteItem `json:"ImagesDeleted"`
	SpaceReclaimed int64        `json:"SpaceReclaimed"`
}

// pruneImages answers POST /images/prune?filters= (docs/server.md, "Prunes"):
// dangling=true (the default) removes untagged images, dangling=false every image (no
// container ever holds one here); label, label! and until narrow the choice.
func (s *Server) pruneImages(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = filters.validate("dangling", "label", "label!", "until")
	}
	var (
		dangling, given bool
		until           time.Time
	)
	if err == nil {
		dangling, given, err = filters.boolFilter("dangling")
	}
	if err == nil {
		until, err = filters.untilFilter(time.Now())
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	opts := []store.PruneOption{store.PruneMatching(func(im store.Image) bool {
		return filters.matchLabels(im.Labels) && (until.IsZero() || !im.Created.After(until))
	})}
	if given && !dangling {
		opts = append(opts, store.PruneAll())
	}
	rep, err := st.Prune(r.Context(), opts...)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	replyJSON(w, http.StatusOK, imagePruneBody{ImagesDeleted: deleteItems(rep.Records), SpaceReclaimed: rep.SpaceReclaimed})
}
