package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/apiserver"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/builder/registrycache"
)

// serveCacheFlags are kiln serve's fleet cache flags: the registry repository several
// servers share steps through, and the size bound of the local caches.
// docs/caching.md ("A fleet sharing one cache") describes them.
type serveCacheFlags struct {
	cacheRepo    string
	cacheTTL     time.Duration
	cacheMaxSize string
}

// addServeCacheFlags registers the fleet cache flags on fs, bound to f.
func addServeCacheFlags(fs *pflag.FlagSet, f *serveCacheFlags) {
	fs.StringVar(&f.cacheRepo, "cache-repo", "", "Registry repository (registry/repo, no tag) shared by several servers as a second-level step cache, laid out as kiln build --cache keeps it: a step missing here is looked up there (and kept here when found), every step built is pushed there before the build's answer ends. Default: none.")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", 336*time.Hour, "With --cache-repo: age after which a step in the repository is not used any more (its image's created time); 0 keeps steps forever. kiln cache gc --repo deletes older ones.")
	fs.StringVar(&f.cacheMaxSize, "cache-max-size", "0", "Bound on the local caches together (step cache, base images, extracted bases, RUN --mount=type=cache directories): after each build and at start, the least recently used entries go until they fit. Bytes or a size such as 20GiB; 0: no bound but the cache mounts' own.")
}

// sharedCache opens the --cache-repo repository as a registry cache with the server's
// credentials and registry settings; nil without --cache-repo.
func (f *serveCacheFlags) sharedCache(b *apiserver.BuildConfig, stateDir string, lg *logrus.Logger) (*registrycache.Cache, error) {
	if f.cacheTTL < 0 {
		return nil, fmt.Errorf("--cache-ttl %s: must not be negative", f.cacheTTL)
	}
	if f.cacheRepo == "" {
		return nil, nil
	}
	repo, err := serveCacheRepository("--cache-repo", f.cacheRepo, b.PlainHTTP)
	if err != nil {
		return nil, err
	}
	reg := repo.RegistryStr()
	tr := b.PushTransport(reg)
	if b.Insecure != nil && b.Insecure(reg) { // --skip-tls-verify-registry
		tr = skipVerify(tr)
	}
	ro := []remote.Option{remote.WithUserAgent("kiln/" + version), remote.WithTransport(tr)}
	if b.Keychain != nil {
		ro = append(ro, remote.WithAuthFromKeychain(b.Keychain))
	}
	return registrycache.New(repo,
		registrycache.WithRemoteOptions(ro...),
		registrycache.WithTTL(f.cacheTTL),
		registrycache.WithSpoolDir(filepath.Join(stateDir, "builds", "cache-spool")),
		registrycache.WithCompression(gzipCompressor(compressMemoDir(stateDir))),
		registrycache.WithLogf(func(format string, args ...any) { lg.Debugf(format, args...) }),
	), nil
}

// gzipCompressor is how kiln serve's outputs compress: gzip, memoized in dir.
func gzipCompressor(dir string) *output.Compressor {
	c, _ := output.NewCompressor(dir, output.Gzip, 0) // cannot fail for gzip at its default level
	return c
}

// serveCacheRepository parses --cache-repo: a repository, without tag or digest, over
// plain HTTP when its registry is an --insecure-registry.
func serveCacheRepository(flag, spec string, plainHTTP func(string) bool) (name.Repository, error) {
	if strings.ContainsAny(spec[strings.LastIndex(spec, "/")+1:], ":@") {
		return name.Repository{}, fmt.Errorf("%s %q: give a repository, without a tag or digest: each step is tagged with its cache key", flag, spec)
	}
	repo, err := name.NewRepository(spec, name.WeakValidation)
	if err != nil {
		return name.Repository{}, refError(flag, spec, err)
	}
	if plainHTTP != nil && plainHTTP(repo.RegistryStr()) {
		if repo, err = name.NewRepository(spec, name.WeakValidation, name.Insecure); err != nil {
			return name.Repository{}, refError(flag, spec, err)
		}
	}
	return repo, nil
}

// openFleetCache sets the workspace's shared cache (--cache-repo) and its cache
// budget (--cache-max-size), and applies the budget once now, before any build.
func (f *serveCacheFlags) openFleetCache(ctx context.Context, cfg *serveConfig, steps *builder.LocalCache, lg *logrus.Logger) error {
	shared, err := f.sharedCache(&cfg.build, cfg.stateDir, lg)
	if err != nil {
		return err
	}
	if shared != nil {
		cfg.build.Workspace.SharedCache = shared
		lg.Infof("Sharing the step cache through the registry repository %s (entries older than %s unused)", shared.Repository(), f.cacheTTL)
	}
	maxBytes, err := parseSize(f.cacheMaxSize)
	if f.cacheMaxSize == "0" {
		maxBytes, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("--cache-max-size: %w", err)
	}
	if maxBytes == 0 {
		return nil
	}
	ws := &cfg.build.Workspace
	ws.Budget = localCaches(steps, ws.BaseCache, ws.MountCacheDir)
	ws.Budget.MaxBytes = maxBytes
	removed, err := ws.Budget.Collect(ctx, builder.CachePrune{MaxUsedSpace: maxBytes}, time.Now(), time.Time{})
	if err != nil {
		return fmt.Errorf("keeping the caches within --cache-max-size: %w", err)
	}
	if len(removed) > 0 {
		lg.Infof("Removed %d least recently used cache entries (%d bytes) to fit --cache-max-size %s", len(removed), recordBytes(removed), f.cacheMaxSize)
	}
	return nil
}

// localCaches is the CacheBudget of a state directory's caches: steps, base images
// (baseCache), the extracted bases kept beside them and the cache mounts.
func localCaches(steps *builder.LocalCache, baseCache, mounts string) *builder.CacheBudget {
	return &builder.CacheBudget{
		Steps:         steps,
		BaseCache:     baseCache,
		RootfsDir:     filepath.Join(baseCache, "rootfs"),
		MountCacheDir: mounts,
	}
}

// recordBytes is the size of records together.
func recordBytes(recs []builder.CacheRecord) int64 {
	var n int64
	for _, r := range recs {
		n += r.Size
	}
	return n
}
