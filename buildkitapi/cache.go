package buildkitapi

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/builder/registrycache"
)

// solveCache is the step cache a solve asks for with --cache-to and --cache-from
// type=registry,ref=R: kiln's registry cache (kaniko's: one tag per step in R's
// repository) instead of the server's own step cache, read and written with
// --cache-to, read only with --cache-from alone. Other cache types are reported and
// skipped; the server's cache then serves the build. It returns nil when the solve
// asks for no registry cache, and the function that waits for the cache's uploads.
func (s *Server) solveCache(opts *controlapi.CacheOptions, kc authn.Keychain, spool string, p *progress) (builder.Cache, func(context.Context) error, error) {
	if opts == nil {
		return nil, nil, nil
	}
	exports := opts.Exports
	if opts.ExportRefDeprecated != "" {
		exports = append(exports, &controlapi.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": opts.ExportRefDeprecated}})
	}
	imports := opts.Imports
	for _, r := range opts.ImportRefsDeprecated {
		imports = append(imports, &controlapi.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": r}})
	}
	var ref string
	readOnly := true
	for _, e := range exports {
		if e.Type == "registry" && e.Attrs["ref"] != "" && ref != "" {
			p.warn(fmt.Sprintf("cache export %s skipped: kiln writes one cache repository per build (%s)", e.Attrs["ref"], repoOf(ref)))
			continue
		}
		if e.Type != "registry" || e.Attrs["ref"] == "" {
			p.warn(fmt.Sprintf("cache export type=%s is not supported by kiln: skipped (kiln caches to one registry repository, type=registry,ref=…)", e.Type))
			continue
		}
		ref, readOnly = e.Attrs["ref"], false
	}
	for _, e := range imports {
		if e.Type != "registry" || e.Attrs["ref"] == "" {
			p.warn(fmt.Sprintf("cache import type=%s is not supported by kiln: skipped (kiln reads a registry repository, type=registry,ref=…)", e.Type))
			continue
		}
		if ref == "" {
			ref = e.Attrs["ref"]
		} else if repoOf(e.Attrs["ref"]) != repoOf(ref) {
			p.warn(fmt.Sprintf("cache import %s skipped: kiln reads one cache repository per build (%s)", e.Attrs["ref"], repoOf(ref)))
		}
	}
	if ref == "" {
		return nil, nil, nil
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("cache ref %q: %w", ref, err)
	}
	repo := parsed.Context()
	if plain := s.cfg.Registry.PlainHTTP; plain != nil && plain(repo.RegistryStr()) {
		if repo, err = name.NewRepository(repo.Name(), name.Insecure); err != nil {
			return nil, nil, fmt.Errorf("cache ref %q: %w", ref, err)
		}
	}
	ro := []remote.Option{remote.WithAuthFromKeychain(kc), remote.WithUserAgent("kiln")}
	if rt := s.pushTransport(repo.RegistryStr()); rt != nil {
		ro = append(ro, remote.WithTransport(rt))
	}
	co := []registrycache.Option{
		registrycache.WithRemoteOptions(ro...),
		registrycache.WithSpoolDir(filepath.Join(spool, "cache-spool")),
		registrycache.WithCompression(gzipLayers(filepath.Join(spool, "cache-spool", "compressed"))),
		registrycache.WithLogf(func(format string, args ...any) { p.info(fmt.Sprintf(format, args...)) }),
	}
	if readOnly {
		co = append(co, registrycache.WithReadOnly())
	}
	rc := registrycache.New(repo, co...)
	mode := "read and written"
	if readOnly {
		mode = "read"
	}
	p.info(fmt.Sprintf("[internal] step cache: registry repository %s (%s)", repo, mode))
	return rc, rc.Flush, nil
}

// compressor is how this server's pushes compress the build's plain layers: gzip,
// memoized beside the local build cache of the state directory (as kiln serve's
// Engine API door does), or nil (a temporary memo) without a state directory.
func (s *Server) compressor() *output.Compressor {
	if s.cfg.Workspace.StateDir == "" {
		return nil
	}
	c, _ := output.NewCompressor(filepath.Join(s.cfg.Workspace.StateDir, "cache", "build", "compressed"), output.Gzip, 0)
	return c
}

// gzipLayers compresses cache entries' layers as the outputs do, memoized in dir.
func gzipLayers(dir string) registrycache.LayerCompressor {
	c, _ := output.NewCompressor(dir, output.Gzip, 0) // cannot fail for gzip at its default level
	return c
}

// repoOf is a reference's repository, or the reference when it does not parse.
func repoOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Context().Name()
}

// pushTransport is the transport for a registry the door writes to.
func (s *Server) pushTransport(registry string) http.RoundTripper {
	if s.cfg.Push.Transport == nil {
		return nil
	}
	return s.cfg.Push.Transport(registry)
}
