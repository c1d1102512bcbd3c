package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/registrycache"
	"github.com/kiln-build/kiln/credentials"
)

// cacheGCFlags are kiln cache gc's flags.
type cacheGCFlags struct {
	stateDir           string
	cacheDir           string
	keepDuration       time.Duration
	maxSize            string
	repo               string
	cacheTTL           time.Duration
	insecureRegistries []string
}

// newCacheCommand returns `kiln cache` and its subcommand gc.
func newCacheCommand(stdout io.Writer) *cobra.Command {
	cache := &cobra.Command{Use: "cache", Short: "Manage kiln's caches", Args: cobra.NoArgs}
	f := &cacheGCFlags{}
	gc := &cobra.Command{
		Use:   "gc [flags]",
		Short: "Remove old or least recently used cache entries, locally and in a cache repository",
		Long: `Remove cache entries that were not used lately, or that take more than a size.

Locally (--state-dir, a kiln serve state directory): the step cache, the base image
cache, the extracted bases and the RUN --mount=type=cache directories, least recently
used first, whatever their kind: those unused for --keep-duration (--until), then more
until they take at most --max-size. Nothing a build of this machine is using is removed.

In a registry (--repo, kiln serve's or kiln build's --cache-repo): the cache entries
(tags of 64 hex digits) created more than --cache-ttl ago are deleted through the
registry API, which must allow deletes; run the registry's own garbage collection to
free their blobs.`,
		Example: `  kiln cache gc --state-dir /var/lib/kiln --keep-duration 72h --max-size 50GiB
  kiln cache gc --repo registry.example.com/team/cache --cache-ttl 168h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCacheGC(cmd.Context(), f, cmd.Flags().Changed("state-dir"), stdout)
		},
	}
	fs := gc.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir, "kiln serve's state directory, whose caches are collected (with --repo, only when given).")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "The base image cache, when kiln serve was given --cache-dir. Default: <state-dir>/cache/base.")
	fs.DurationVar(&f.keepDuration, "keep-duration", 0, "Remove the entries not used for this long (docker builder prune --filter until=). 0: no age bound.")
	fs.DurationVar(&f.keepDuration, "until", 0, "Same as --keep-duration.")
	fs.StringVar(&f.maxSize, "max-size", "0", "Remove least recently used entries until the caches take at most this (bytes, or 20GiB). 0: no size bound.")
	fs.StringVar(&f.repo, "repo", "", "Cache repository (registry/repo) whose entries older than --cache-ttl are deleted.")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", 336*time.Hour, "With --repo: age (since the entry was pushed) after which an entry is deleted.")
	fs.StringArrayVar(&f.insecureRegistries, "insecure-registry", nil, "Registry (host[:port]) reached over plain HTTP. Repeat for several.")
	cache.AddCommand(gc)
	return cache
}

// runCacheGC is kiln cache gc: the local caches unless only --repo is given, then
// the repository.
func runCacheGC(ctx context.Context, f *cacheGCFlags, stateDirGiven bool, stdout io.Writer) error {
	maxBytes, err := parseSize(f.maxSize)
	if f.maxSize == "0" {
		maxBytes, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("--max-size: %w", err)
	}
	if f.keepDuration < 0 {
		return fmt.Errorf("--keep-duration %s: must not be negative", f.keepDuration)
	}
	local := f.repo == "" || stateDirGiven
	if local && f.keepDuration == 0 && maxBytes == 0 {
		return errors.New("give --keep-duration (--until) or --max-size: kiln cache gc does not empty the caches (remove the directory for that)")
	}
	if local {
		if err := gcLocal(ctx, f, maxBytes, stdout); err != nil {
			return err
		}
	}
	if f.repo == "" {
		return nil
	}
	return gcRepo(ctx, f, stdout)
}

// gcLocal collects the state directory's caches.
func gcLocal(ctx context.Context, f *cacheGCFlags, maxBytes int64, stdout io.Writer) error {
	state, err := filepath.Abs(f.stateDir)
	if err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	base := filepath.Join(state, "cache", "base")
	if f.cacheDir != "" {
		base = f.cacheDir
	}
	steps, err := builder.NewLocalCache(filepath.Join(state, "cache", "build"))
	if err != nil {
		return fmt.Errorf("opening the step cache: %w", err)
	}
	budget := localCaches(steps, base, filepath.Join(state, "cache", "mounts"))
	removed, err := budget.Collect(ctx, builder.CachePrune{KeepDuration: f.keepDuration, MaxUsedSpace: maxBytes}, time.Now(), time.Time{})
	for _, r := range removed {
		fmt.Fprintf(stdout, "removed %s %s (%d bytes, last used %s)\n", r.Type, r.Description, r.Size, r.LastUsedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "Removed %d cache entries from %s: %d bytes reclaimed\n", len(removed), state, recordBytes(removed))
	return err
}

// gcRepo deletes the repository's entries older than --cache-ttl.
func gcRepo(ctx context.Context, f *cacheGCFlags, stdout io.Writer) error {
	repo, err := serveCacheRepository("--repo", f.repo, func(reg string) bool { return slices.Contains(f.insecureRegistries, reg) })
	if err != nil {
		return err
	}
	rep, err := registrycache.GC(ctx, repo, f.cacheTTL, time.Now(),
		remote.WithAuthFromKeychain(credentials.Chain()), remote.WithUserAgent("kiln/"+version))
	fmt.Fprintf(stdout, "Deleted %d of %d cache entries older than %s from %s\n", len(rep.Deleted), rep.Tags, f.cacheTTL, repo)
	return err
}
