package buildkitapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/builder"
)

// What kiln's caches are as BuildKit's usage records. The step cache's entries are
// BuildKit's "regular" records; the base-image cache's too, reported in use because no
// prune removes them (they are the pull mirror, not build cache: docs/caching.md); the
// context cache's are "source.local" records, mutable as BuildKit's local sources are.
const (
	recordRegular     = "regular"
	recordLocalSource = "source.local"
	baseImageType     = "base-image" // builder.BaseCacheUsage's Type
)

// stepCache is what the door needs of the workspace's step cache
// (builder.LocalCache): its entries and the shared prune rule.
type stepCache interface {
	Usage(ctx context.Context) ([]builder.CacheRecord, error)
	PruneRecords(ctx context.Context, p builder.CachePrune) ([]builder.CacheRecord, builder.PruneReport, error)
}

// DiskUsage lists kiln's build caches as BuildKit records (docker buildx du, buildctl
// du): the step cache, the base-image cache and the cached build contexts, narrowed by
// the request's filters and, with an age limit, to what has not been used within it.
func (c *control) DiskUsage(ctx context.Context, req *controlapi.DiskUsageRequest) (*controlapi.DiskUsageResponse, error) {
	match, err := parseUsageFilters(req.Filter)
	if err != nil {
		return nil, err
	}
	records, err := c.s.cacheRecords(ctx, true)
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-time.Duration(req.AgeLimit))
	resp := &controlapi.DiskUsageResponse{}
	for _, r := range records {
		if req.AgeLimit > 0 && !r.LastUsedAt.Before(cutoff) {
			continue
		}
		if match(r) {
			resp.Record = append(resp.Record, usageRecord(r))
		}
	}
	return resp, nil
}

// Prune removes what the request selects from the step cache and the context cache
// (docker buildx prune, docker builder prune with buildx, buildctl prune) by the rule
// /build/prune follows (builder.CachePrune), and streams each removed record. All
// changes nothing: no entry of kiln's caches is dangling, each is a plain cached
// result, so every one not in use is a candidate.
func (c *control) Prune(req *controlapi.PruneRequest, stream grpc.ServerStreamingServer[controlapi.UsageRecord]) error {
	ctx := stream.Context()
	match, err := parseUsageFilters(req.Filter)
	if err != nil {
		return err
	}
	p := builder.CachePrune{
		KeepDuration:  time.Duration(req.KeepDuration),
		ReservedSpace: req.ReservedSpace,
		MaxUsedSpace:  req.MaxUsedSpace,
		MinFreeSpace:  req.MinFreeSpace,
		Match:         match,
	}
	s := c.s
	keepBytes, err := p.KeepBytes(s.cfg.Workspace.StateDir)
	if err != nil {
		return err
	}
	records, err := s.cacheRecords(ctx, false)
	if err != nil {
		return err
	}
	steps, contexts, mounts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, r := range p.Select(records, time.Now(), keepBytes) {
		switch r.Type {
		case recordLocalSource:
			contexts[r.ID] = true
		case builder.MountCacheType:
			mounts[r.ID] = true
		default:
			steps[r.ID] = true
		}
	}
	if sc, ok := s.cfg.Workspace.Cache.(stepCache); ok && len(steps) > 0 {
		removed, _, err := sc.PruneRecords(ctx, builder.CachePrune{Match: func(r builder.CacheRecord) bool { return steps[r.ID] }})
		if err != nil {
			return fmt.Errorf("pruning the build cache: %w", err)
		}
		for _, r := range removed {
			if err := stream.Send(usageRecord(r)); err != nil {
				return err
			}
		}
	}
	if dir := s.cfg.Workspace.MountCacheDir; dir != "" && len(mounts) > 0 {
		removed, err := builder.PruneMountCache(dir, builder.CachePrune{Match: func(r builder.CacheRecord) bool { return mounts[r.ID] }})
		if err != nil {
			return fmt.Errorf("pruning the cache mounts: %w", err)
		}
		for _, r := range removed {
			if err := stream.Send(usageRecord(r)); err != nil {
				return err
			}
		}
	}
	for _, r := range s.contexts.remove(contexts) {
		if err := stream.Send(usageRecord(contextRecord(r))); err != nil {
			return err
		}
	}
	return nil
}

// cacheRecords lists the caches' entries: the step cache's, the cached contexts' and,
// withBase, the base-image cache's.
func (s *Server) cacheRecords(ctx context.Context, withBase bool) ([]builder.CacheRecord, error) {
	var out []builder.CacheRecord
	if sc, ok := s.cfg.Workspace.Cache.(stepCache); ok {
		steps, err := sc.Usage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the build cache: %w", err)
		}
		out = append(out, steps...)
	}
	for _, u := range s.contexts.usage() {
		out = append(out, contextRecord(u))
	}
	if dir := s.cfg.Workspace.MountCacheDir; dir != "" {
		mounts, err := builder.MountCacheUsage(dir)
		if err != nil {
			return nil, fmt.Errorf("reading the cache mounts: %w", err)
		}
		out = append(out, mounts...)
	}
	if dir := s.cfg.Workspace.BaseCache; withBase && dir != "" {
		bases, err := builder.BaseCacheUsage(dir)
		if err != nil {
			return nil, fmt.Errorf("reading the base-image cache: %w", err)
		}
		for _, b := range bases {
			b.InUse = true
			out = append(out, b)
		}
	}
	return out, nil
}

// contextRecord is a cached build context as a cache record. Its ID is derived from
// the client's session key, which it does not show.
func contextRecord(u cacheUsage) builder.CacheRecord {
	sum := sha256.Sum256([]byte(u.key))
	return builder.CacheRecord{
		ID:          hex.EncodeToString(sum[:])[:25],
		Type:        recordLocalSource,
		Description: "local source for context",
		Size:        u.size,
		InUse:       u.busy,
		CreatedAt:   u.used,
		LastUsedAt:  u.used,
	}
}

// usageRecord is a cache record as BuildKit reports it.
func usageRecord(r builder.CacheRecord) *controlapi.UsageRecord {
	typ := r.Type
	description := r.Description
	if typ == baseImageType {
		typ = recordRegular
		description = "base image " + description
	}
	u := &controlapi.UsageRecord{
		ID:          r.ID,
		Mutable:     typ == recordLocalSource || typ == builder.MountCacheType,
		InUse:       r.InUse,
		Size:        r.Size,
		Description: description,
		RecordType:  typ,
		Shared:      r.Shared,
	}
	if !r.CreatedAt.IsZero() {
		u.CreatedAt = timestamppb.New(r.CreatedAt)
	}
	if !r.LastUsedAt.IsZero() {
		u.LastUsedAt = timestamppb.New(r.LastUsedAt) // kiln counts no uses: UsageCount stays 0
	}
	return u
}

// remove drops the idle cached contexts whose record IDs are in ids, and returns them.
func (c *contextCache) remove(ids map[string]bool) []cacheUsage {
	if len(ids) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cacheUsage
	for _, e := range c.entries {
		u := cacheUsage{key: e.key, path: e.path, used: e.used}
		if e.busy || !ids[contextRecord(u).ID] {
			continue
		}
		u.size = builder.DirSize(e.path)
		c.dropLocked(e)
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].used.Before(out[j].used) })
	return out
}

// invalidFilter is how a filter kiln cannot apply is refused: InvalidArgument, coded
// as BuildKit codes its errors so that the interceptor sends the message as it is.
func invalidFilter(format string, args ...any) error {
	return grpcerrors.WrapCode(fmt.Errorf(format, args...), codes.InvalidArgument)
}
