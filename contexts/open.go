package contexts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/kiln-build/kiln/nettimeout"
)

// OpenOption configures Open.
type OpenOption func(*openSettings)

type openSettings struct {
	stdin   io.Reader         // tar://stdin
	subPath string            // --context-sub-path
	git     GitOptions        // git contexts
	tmpDir  string            // parent of fetched contexts; "" is os.TempDir()
	archive []ArchiveOption   // limits for tar://, s3://, gs:// and Azure Blob contexts
	cloud   CloudOptions      // s3://, gs:// and Azure Blob contexts
	net     nettimeout.Limits // FromBucket's downloads (from archive's WithNetLimits)
}

// WithStdin gives Open the stream a tar://stdin context is read from. The package
// never reads os.Stdin itself: only the CLI knows whether its stdin is free.
func WithStdin(r io.Reader) OpenOption {
	return func(s *openSettings) { s.stdin = r }
}

// WithSubPath makes the context the directory sub inside what was fetched
// (kaniko's --context-sub-path). sub must stay inside the fetched tree.
func WithSubPath(sub string) OpenOption {
	return func(s *openSettings) { s.subPath = sub }
}

// WithGit sets how git contexts are cloned (branch, credentials, TLS).
func WithGit(g GitOptions) OpenOption {
	return func(s *openSettings) { s.git = g }
}

// WithTempDir names the directory fetched contexts are extracted or cloned under.
func WithTempDir(dir string) OpenOption {
	return func(s *openSettings) { s.tmpDir = dir }
}

// WithCloud sets how bucket contexts (s3://, gs://, Azure Blob URLs) are fetched.
func WithCloud(c CloudOptions) OpenOption {
	return func(s *openSettings) { s.cloud = c }
}

// WithArchiveOptions passes limits (WithMaxBytes, WithMaxEntries) to the archive
// sources: tar://, s3://, gs:// and Azure Blob.
func WithArchiveOptions(opts ...ArchiveOption) OpenOption {
	return func(s *openSettings) { s.archive = append(s.archive, opts...) }
}

// Open resolves a kaniko-style --context value: a plain path or dir://path (used in
// place), tar://path.tar[.gz|.bz2|.xz|.zst] or tar://stdin (extracted), a git URL
// (git://host/repo.git#ref#commit, https://host/repo.git#ref; cloned), or an archive
// in a bucket (s3://bucket/key, gs://bucket/object, an Azure Blob URL; downloaded and
// extracted). A fetched context lives in a temporary directory the Context owns: the
// caller must Close it. Other schemes are a clear error.
func Open(ctx context.Context, spec string, opts ...OpenOption) (*Context, error) {
	var s openSettings
	for _, o := range opts {
		o(&s)
	}
	switch {
	case strings.HasPrefix(spec, "dir://"):
		return fromDirSub(strings.TrimPrefix(spec, "dir://"), s.subPath)
	case !strings.Contains(spec, "://") && !IsGitURL(spec):
		return fromDirSub(spec, s.subPath)
	case strings.HasPrefix(spec, "tar://"):
		return fetchInto(s, func(dir string) (*Context, error) {
			return openTar(ctx, strings.TrimPrefix(spec, "tar://"), dir, s)
		})
	case IsGitURL(spec):
		return fetchInto(s, func(dir string) (*Context, error) {
			return FromGit(ctx, spec, dir, s.git, s.archive...)
		})
	case s.cloud.IsBucketURL(spec):
		return fetchInto(s, func(dir string) (*Context, error) {
			return FromBucket(ctx, spec, dir, s.cloud, s.archive...)
		})
	}
	scheme := spec[:strings.Index(spec, "://")]
	return nil, fmt.Errorf("context %q: unknown context source %s:// (use a directory, dir://, tar://, a git URL, s3://, gs:// or an Azure Blob URL)", spec, scheme)
}

// fromDirSub opens a local directory, or its sub-path.
func fromDirSub(dir, sub string) (*Context, error) {
	if sub == "" {
		return FromDir(dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("context directory %q: %w", dir, err)
	}
	full, err := subDir(abs, sub)
	if err != nil {
		return nil, err
	}
	return FromDir(full)
}

// fetchInto runs fetch into a new temporary directory the returned Context owns,
// then applies the sub-path. On failure the directory is removed.
func fetchInto(s openSettings, fetch func(dir string) (*Context, error)) (*Context, error) {
	tmp, err := os.MkdirTemp(s.tmpDir, "kiln-context-")
	if err != nil {
		return nil, fmt.Errorf("context directory: %w", err)
	}
	c, err := fetch(tmp)
	if err == nil && s.subPath != "" {
		c, err = subContext(tmp, s.subPath)
	}
	if err != nil {
		return nil, errors.Join(err, removeOwned(tmp))
	}
	c.owned = tmp
	return c, nil
}

// subContext makes the fetched tree's sub-directory sub the context, reading its
// .dockerignore inside it.
func subContext(root, sub string) (*Context, error) {
	full, err := subDir(root, sub)
	if err != nil {
		return nil, err
	}
	c := &Context{Dir: full}
	if err := c.readIgnoreInRoot(); err != nil {
		return nil, err
	}
	return c, nil
}

// subDir resolves sub inside root, following symlinks only within root, and checks
// that it names a directory.
func subDir(root, sub string) (string, error) {
	clean := filepath.Clean("/" + sub)
	if rel := filepath.Clean(sub); filepath.IsAbs(sub) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("--context-sub-path %q: must be a relative path inside the context", sub)
	}
	full, err := securejoin.SecureJoin(root, clean)
	if err != nil {
		return "", fmt.Errorf("--context-sub-path %q: %w", sub, err)
	}
	fi, err := os.Stat(full)
	if err != nil {
		return "", fmt.Errorf("--context-sub-path %q: %w", sub, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("--context-sub-path %q: not a directory", sub)
	}
	return full, nil
}

// openTar extracts a tar:// context: a local archive file, or stdin.
func openTar(ctx context.Context, path, dir string, s openSettings) (*Context, error) {
	if path == "stdin" {
		if s.stdin == nil {
			return nil, errors.New("context tar://stdin: no standard input was given")
		}
		return FromArchive(ctx, s.stdin, dir, s.archive...)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("context tar://%s: %w", path, err)
	}
	defer f.Close()
	c, err := FromArchive(ctx, f, dir, s.archive...)
	if err != nil {
		return nil, fmt.Errorf("context tar://%s: %w", path, err)
	}
	return c, nil
}

// Close removes the directory a fetched context (tar://, git) was materialised in.
// A directory context owns nothing, and Close on it does nothing.
func (c *Context) Close() error {
	if c == nil || c.owned == "" {
		return nil
	}
	dir := c.owned
	c.owned = ""
	return removeOwned(dir)
}

// removeOwned deletes a temporary context directory. Extracted trees may hold
// read-only directories, which RemoveAll cannot empty until they are writable.
func removeOwned(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing context directory %s: %w", dir, err)
	}
	return nil
}

// TempRoot returns the temporary directory a fetched context (tar://, git) was
// materialised in, which Close removes; "" for a directory context. An in-place build
// must leave it alone while it runs.
func (c *Context) TempRoot() string {
	if c == nil {
		return ""
	}
	return c.owned
}
