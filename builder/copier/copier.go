package copier

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"

	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/snapshot"
)

// Source is where COPY/ADD sources are looked up: the build context directory, or the
// root filesystem of another stage or image (COPY --from).
type Source struct {
	// Root is the host directory that is "/" (or the context root) for the sources.
	Root string
	// Excluded reports whether rel (slash-separated, relative to Root) is hidden by
	// .dockerignore. Excluded paths behave as if they were not in the context, the way
	// the docker CLI leaves them out of the context it sends. nil excludes nothing.
	Excluded func(rel string) bool
	// NoExceptions, when true, promises that nothing below an excluded directory is
	// re-included (.dockerignore has no "!" pattern), so Copy can skip an excluded
	// directory without looking inside. Set it from contexts.Context.HasExceptions;
	// false is always correct, only slower.
	NoExceptions bool
	// List, when not nil, lists the directory rel (slash-separated, below Root; "."
	// for Root) in name order with each entry's lstat, from what the caller knows of
	// the tree, or reports false when it does not know it. Select lists directories
	// with it instead of reading the disk (a context received by file sync, whose
	// metadata the receiver keeps); Copy always reads the disk.
	List func(rel string) ([]fs.FileInfo, bool)
	// Context is true for the build context and false for a --from source. It selects
	// the error text for missing sources and, without --chown, whether ownership is
	// reset to 0:0 (context) or kept from the source (--from), as the classic builder does.
	Context bool
}

// Owner is a numeric user and group, already resolved from a --chown value.
type Owner struct{ UID, GID int }

// Request is one COPY or ADD after variable expansion.
type Request struct {
	// Sources are the sources as written: they may contain wildcards (*, ?, [..]) and,
	// for ADD, be http(s) URLs.
	Sources []string
	// Dest is the destination as written. A trailing "/" makes it a directory.
	Dest string
	// WorkDir is the image's working directory; a relative Dest is joined to it.
	WorkDir string
	// Chown is the --chown owner. nil means the classic builder's default: 0:0 for
	// the build context and for URLs, the source's own owner for --from.
	Chown *Owner
	// Chmod is the --chmod mode for every file and directory copied. nil keeps the
	// source's mode. (The classic builder rejects --chmod; the builder decides.)
	Chmod *Chmod
	// Exclude are the --exclude patterns (.dockerignore syntax), matched against the
	// paths below each source, relative to it.
	Exclude []string
	// Parents is COPY --parents: each source keeps its path below the destination
	// (see parentsSource).
	Parents bool
	// Link is COPY --link / ADD --link: the copy does not see the build root's
	// content (see copyLinked).
	Link bool
	// Checksum is ADD --checksum: the digest (sha256:..., sha384:..., sha512:...) the
	// one downloaded URL must have. Empty checks nothing.
	Checksum string
	// Unpack is ADD --unpack: nil extracts local archives and never downloads (the
	// default); true extracts downloaded archives too; false extracts nothing.
	Unpack *bool
	// Add selects ADD semantics: URLs are downloaded and local tar archives extracted.
	Add bool
	// HTTPClient fetches ADD URLs; nil means a client held to Net.
	HTTPClient *http.Client
	// Net are the connect and stall limits of ADD's URL downloads.
	Net nettimeout.Limits
	// MaxArchiveBytes and MaxArchiveRatio bound what an archive ADD extracts may
	// expand to, in bytes and in times its compressed size (compression.Limits): past
	// them the extraction fails with compression.ErrBomb, naming the kiln serve flags
	// --max-add-size and --max-decompression-ratio. 0 is unlimited.
	MaxArchiveBytes int64
	MaxArchiveRatio int64
	// TempDir is the host directory downloads are written to before being copied; it
	// must be outside the build root. Empty means the system's temporary directory.
	TempDir string
	// Plan, when not nil, is COPY's fast path for a root nobody reads afterwards:
	// regular files are not created in dstRoot but added to Plan, for
	// snapshot.WriteLayer to take from their sources (see plan.go). Everything else
	// (directories, symlinks, removals, lookups in the destination) still happens in
	// dstRoot. The sources must stay in place until the layer is written.
	Plan *snapshot.Plan
}

// Copy performs req from src into the build root dstRoot, the host directory that is
// "/" of the image being built. It returns the image paths it created or modified
// (files and directories, including parent directories it created), sorted, for the
// snapshotter to put in the layer.
//
// Destination paths are resolved inside dstRoot with symlinks followed as if dstRoot
// were "/", and source paths inside src.Root the same way: nothing is read from or
// written to outside the two roots.
func Copy(ctx context.Context, src Source, dstRoot string, req Request) ([]string, error) {
	cmd := "COPY"
	if req.Add {
		cmd = "ADD"
	}
	var err error
	if dstRoot, err = filepath.Abs(dstRoot); err != nil {
		return nil, fmt.Errorf("build root %q: %w", dstRoot, err)
	}
	if req.Link {
		return copyLinked(ctx, src, dstRoot, req)
	}
	if src.Root, err = filepath.Abs(src.Root); err != nil {
		return nil, fmt.Errorf("source root %q: %w", src.Root, err)
	}
	exclude, err := newExcluder(req.Exclude)
	if err != nil {
		return nil, fmt.Errorf("%s failed: %w", cmd, err)
	}
	c := &copier{
		src:      src,
		dstRoot:  dstRoot,
		req:      req,
		exclude:  exclude,
		touched:  map[string]struct{}{},
		buf:      make([]byte, 256<<10),
		planning: req.Plan != nil,
	}
	defer c.cleanup()

	if req.Parents {
		if err := c.copyParents(ctx, normalizeDest(req.WorkDir, req.Dest)); err != nil {
			return nil, fmt.Errorf("%s failed: %w", cmd, err)
		}
		return c.touchedPaths(), nil
	}
	items, err := c.resolveSources(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s failed: %w", cmd, err)
	}
	if err := c.checkPlan(items); err != nil {
		return nil, fmt.Errorf("%s failed: %w", cmd, err)
	}
	if len(items) > 1 && !strings.HasSuffix(req.Dest, "/") {
		//lint:ignore ST1005 this is Docker's message, word for word
		return nil, fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /", cmd)
	}
	dest := normalizeDest(req.WorkDir, req.Dest)
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.copyItem(ctx, it, dest); err != nil {
			return nil, fmt.Errorf("failed to copy files: %w", err)
		}
	}
	return c.touchedPaths(), nil
}

// copier holds the state of one Copy call. It is used by one goroutine only.
type copier struct {
	src     Source
	dstRoot string
	req     Request
	exclude *patternmatcher.PatternMatcher // --exclude; nil for none
	// planning is whether regular files go into req.Plan rather than the root
	// (plan.go); req.Plan is still kept up to date when planning is off.
	planning bool
	// touchedDir and touchedSec are the directory touchParent last updated, and when.
	touchedDir string
	touchedSec int64

	touched  map[string]struct{} // image paths created or modified
	buf      []byte              // copy buffer, reused for every file of this call
	tmpPaths []string            // downloads to remove when the call ends
}

func (c *copier) cleanup() {
	for _, p := range c.tmpPaths {
		_ = os.RemoveAll(p)
	}
}

// touch records the host path p (inside dstRoot) as created or modified.
func (c *copier) touch(p string) {
	c.touched[c.imagePath(p)] = struct{}{}
}

func (c *copier) touchedPaths() []string {
	out := make([]string, 0, len(c.touched))
	for p := range c.touched {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// imagePath turns a host path inside dstRoot into the image path it stands for.
func (c *copier) imagePath(host string) string {
	rel, err := filepath.Rel(c.dstRoot, host)
	if err != nil || rel == "." {
		return "/"
	}
	return path.Clean("/" + filepath.ToSlash(rel))
}

// identity returns the owner every copied path gets, or nil when each path keeps its
// source's owner: the classic builder chowns to the root pair (0:0) unless --chown is
// given, except for COPY --from without --chown, which preserves ownership.
// Downloads never preserve: their temporary file's owner means nothing.
func (c *copier) identity(it item) *Owner {
	switch {
	case c.req.Chown != nil:
		o := *c.req.Chown
		return &o
	case !c.src.Context && !it.remote:
		return nil
	}
	return &Owner{}
}

// normalizeDest makes the destination absolute in the image, keeping a trailing slash
// because it decides whether a file source lands inside the destination.
func normalizeDest(workDir, dest string) string {
	if path.IsAbs(dest) {
		return dest
	}
	d := path.Join("/", filepath.ToSlash(workDir), dest)
	if strings.HasSuffix(dest, "/") && d != "/" {
		d += "/"
	}
	return d
}
