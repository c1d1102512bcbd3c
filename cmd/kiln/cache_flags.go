package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/builder/registrycache"
)

// cacheFlags are kaniko's layer-cache flags (--cache and its companions) and kiln's
// --cache-report. docs/caching.md describes the registry cache they configure.
type cacheFlags struct {
	cache             bool
	cacheRepo         string
	cacheTTL          time.Duration
	cacheRunLayers    bool
	cacheCopyLayers   bool
	compressedCaching bool
	noPushCache       bool
	cacheReport       string
}

// addCacheFlags registers the cache flags on fs, bound to f, with kaniko's defaults.
func addCacheFlags(fs *pflag.FlagSet, f *cacheFlags) {
	fs.BoolVar(&f.cache, "cache", false, "Reuse the steps of earlier builds kept in --cache-repo, and keep this build's steps there. Without a repository (--no-push and no --cache-repo), a given --state-dir keeps the cache in <state-dir>/cache/build instead.")
	fs.StringVar(&f.cacheRepo, "cache-repo", "", "Repository (registry/repo, no tag) for cached steps, one image per step tagged with its cache key. Default: <first --destination's repository>/cache, as kaniko infers it.")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", 336*time.Hour, "Age after which a cached step is not used any more (its image's created time); 0 keeps steps forever.")
	fs.BoolVar(&f.cacheRunLayers, "cache-run-layers", true, "Cache RUN steps.")
	fs.BoolVar(&f.cacheCopyLayers, "cache-copy-layers", false, "Cache COPY and ADD steps. Off by default, as in kaniko: they run every time, and the steps after them still hit when their sources are unchanged.")
	fs.BoolVar(&f.compressedCaching, "compressed-caching", true, "Accepted for kaniko compatibility; it changes nothing. kaniko trades memory for CPU with it (holding each compressed layer in memory to push it to the cache); kiln writes every layer compressed, once, to a file, and pushes that file.")
	fs.BoolVar(&f.noPushCache, "no-push-cache", false, "Use the cache, but do not push this build's steps to it.")
	fs.StringVar(&f.cacheReport, "cache-report", "", "File to write, after the build (also a failed one), what the cache did with each step: hit, miss and why. JSON, or text when the name ends in .txt.")
}

// stepCache is the step cache a build uses, ready for the workspace.
type stepCache struct {
	cache builder.Cache
	// where names the cache for the log.
	where string
	// flush waits for stores still running in the background; nil when stores are
	// done by the time Put returns.
	flush func(ctx context.Context) error
	// logf receives the registry cache's progress lines; runBuild points it at the
	// build's log.
	logf func(format string, args ...any)
}

// cacheTarget is where --cache keeps steps: a registry repository or, without one, a
// directory under the state directory.
type cacheTarget struct {
	repo   *name.Repository
	remote []remote.Option
	local  bool
}

// planCacheTarget checks the cache flags, before anything is built. With --cache, the
// repository is --cache-repo or, as kaniko infers it, <first destination>/cache.
// kaniko refuses --cache with --no-push and no --cache-repo; kiln does too, unless a
// --state-dir was given, whose directory then holds the cache.
func planCacheTarget(f *buildFlags, out outputs, kc authn.Keychain) (*cacheTarget, error) {
	if !f.cache {
		return nil, nil
	}
	if f.cacheTTL < 0 {
		return nil, fmt.Errorf("--cache-ttl %s: must not be negative", f.cacheTTL)
	}
	repo, err := cacheRepository(f, out)
	if err != nil {
		return nil, err
	}
	if repo == nil {
		if f.stateDir == "" {
			return nil, errors.New("if using cache with --no-push, specify cache repo with --cache-repo (or give --state-dir to keep the cache there)")
		}
		return &cacheTarget{local: true}, nil
	}
	reg := repo.RegistryStr()
	tr := out.transportFor(reg)
	if out.skipTLSVerify != nil && out.skipTLSVerify(reg) {
		tr = skipVerify(tr)
	}
	return &cacheTarget{repo: repo, remote: []remote.Option{
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(tr),
		remote.WithUserAgent("kiln/" + version),
	}}, nil
}

// cacheRepository parses --cache-repo, or infers it from the first destination when
// the image is pushed; nil when there is neither.
func cacheRepository(f *buildFlags, out outputs) (*name.Repository, error) {
	spec := f.cacheRepo
	if strings.HasPrefix(spec, "oci:") {
		return nil, fmt.Errorf("--cache-repo %q: kaniko's OCI layout cache is not supported; give --state-dir with --no-push for a cache on disk", spec)
	}
	if spec == "" {
		if !out.push || len(out.destinations) == 0 {
			return nil, nil
		}
		spec = out.destinations[0].Context().Name() + "/cache"
	}
	if strings.ContainsAny(spec[strings.LastIndex(spec, "/")+1:], ":@") {
		return nil, fmt.Errorf("--cache-repo %q: give a repository, without a tag or digest: each step is tagged with its cache key", spec)
	}
	opts := []name.Option{name.WeakValidation}
	repo, err := name.NewRepository(spec, opts...)
	if err != nil {
		return nil, refError("--cache-repo", spec, err)
	}
	if f.insecure || slices.Contains(f.insecureRegistries, repo.RegistryStr()) {
		if repo, err = name.NewRepository(spec, append(opts, name.Insecure)...); err != nil {
			return nil, refError("--cache-repo", spec, err)
		}
	}
	return &repo, nil
}

// skipVerify returns a copy of rt that does not verify TLS certificates, as pushes to
// a --skip-tls-verify registry do; a transport it cannot copy is returned as it is.
func skipVerify(rt http.RoundTripper) http.RoundTripper {
	base, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	t := base.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the user asked for it per registry
	return t
}

// open makes the cache, once the state directory exists. Only the step kinds
// --cache-run-layers and --cache-copy-layers allow are looked up and stored.
func (t *cacheTarget) open(f *buildFlags, stateDir string, comp *output.Compressor) (*stepCache, error) {
	sc := &stepCache{logf: func(string, ...any) {}}
	if t.local {
		dir := filepath.Join(stateDir, "cache", "build") // where kiln serve keeps it too
		lc, err := builder.NewLocalCache(dir, builder.WithTTL(f.cacheTTL))
		if err != nil {
			return nil, fmt.Errorf("opening the build cache: %w", err)
		}
		sc.cache, sc.where = lc, "directory "+dir
	} else {
		opts := []registrycache.Option{
			registrycache.WithRemoteOptions(t.remote...),
			registrycache.WithTTL(f.cacheTTL),
			registrycache.WithSpoolDir(filepath.Join(stateDir, "cache-spool")),
			registrycache.WithCompression(comp),
			registrycache.WithLogf(func(format string, args ...any) { sc.logf(format, args...) }),
		}
		if f.noPushCache {
			opts = append(opts, registrycache.WithReadOnly())
		}
		rc := registrycache.New(*t.repo, opts...)
		sc.cache, sc.where, sc.flush = rc, "repository "+t.repo.String(), rc.Flush
	}
	sc.cache = builder.FilterSteps(sc.cache, stepKinds(f.cacheRunLayers, f.cacheCopyLayers))
	return sc, nil
}

// stepKinds says which instructions are cached: RUN unless --cache-run-layers=false,
// COPY and ADD with --cache-copy-layers, every other instruction always (they add no
// layer; their entries keep the time they first ran, and with it the image's ID).
func stepKinds(run, copyLayers bool) func(instruction string) bool {
	return func(instruction string) bool {
		switch instruction {
		case "RUN":
			return run
		case "COPY", "ADD":
			return copyLayers
		}
		return true
	}
}

// finish waits for the cache's background stores. A store that failed is a warning,
// never a failed build, as in kaniko.
func (sc *stepCache) finish(ctx context.Context, warnf func(format string, args ...any)) {
	if sc == nil || sc.flush == nil {
		return
	}
	if err := sc.flush(ctx); err != nil {
		warnf("Error uploading layer to cache: %v", err)
	}
}
