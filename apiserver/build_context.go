package apiserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/contexts"
)

// Limits on what one build may upload or make the server download. dockerd has none
// (docs/server.md, "The build context"); these only stop a runaway or hostile request (a
// decompression bomb) from filling the state volume.
const (
	// DefaultMaxContextBytes bounds a context's files (uncompressed) when
	// BuildConfig.MaxContextBytes is 0.
	DefaultMaxContextBytes = 32 << 30
	// DefaultMaxContextEntries bounds a context's entries when
	// BuildConfig.MaxContextEntries is 0.
	DefaultMaxContextEntries = 2_000_000
	// maxDrain is how much of an unwanted body is read before answering an error, so
	// the CLI, still writing its tar, sees the answer instead of a broken pipe
	// (docs/server.md, "The build's output stream").
	maxDrain = 64 << 20
)

// readContext makes the request's build context in dir: the body's tar, or the
// remote= git repository's clone, bucket object's or URL's download (the body is then drained and
// ignored, as dockerd does). A git clone uses no credentials of the server's.
//
// With memDir, an archive is extracted there first (a tmpfs: BuildConfig.MemoryDir)
// and moves to dir only once it holds more than BuildConfig.MemoryContextBytes.
func readContext(ctx context.Context, r *http.Request, o *buildOptions, dir, memDir string, b BuildConfig) (*contexts.Context, *apiError) {
	limits := []contexts.ArchiveOption{
		contexts.WithMaxBytes(cmp.Or(b.MaxContextBytes, DefaultMaxContextBytes)),
		contexts.WithMaxEntries(cmp.Or(b.MaxContextEntries, DefaultMaxContextEntries)),
		contexts.WithMaxRatio(b.MaxContextRatio),
		contexts.WithNetLimits(b.Net.Guarded(b.Workspace.Fetch)),
	}
	if memDir != "" {
		limits = append(limits, contexts.WithMemoryFirst(filepath.Join(memDir, "context"), b.MemoryContextBytes))
	}
	cloud := b.Cloud
	var (
		c   *contexts.Context
		err error
	)
	switch {
	case contexts.IsGitURL(o.remote):
		drain(r.Body)
		c, err = contexts.FromGit(ctx, o.remote, dir, contexts.GitOptions{}, limits...)
	case cloud.IsBucketURL(o.remote):
		drain(r.Body)
		c, err = contexts.FromBucket(ctx, o.remote, dir, cloud, limits...)
	case o.remote != "":
		drain(r.Body)
		name := o.dockerfile
		if name == "" {
			name = "Dockerfile"
		}
		c, err = contexts.FromURL(ctx, o.remote, dir, append(limits, contexts.WithDockerfileName(name))...)
	default:
		c, err = contexts.FromArchive(ctx, r.Body, dir, limits...)
		drain(r.Body) // what follows the end-of-archive blocks
	}
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, contexts.ErrLimitExceeded):
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, msg: err.Error()}
	}
	return nil, &apiError{status: http.StatusInternalServerError, msg: err.Error()}
}

// drain reads what is left of a body, up to maxDrain.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
}

// readDockerfile reads the Dockerfile the query names from the context with
// contexts.ReadDockerfile (inside the context, size-capped), falling back from the
// default "Dockerfile" to "dockerfile" as dockerd does. It returns the content and the
// name messages use.
func readDockerfile(c *contexts.Context, requested string) ([]byte, string, *apiError) {
	if requested == "" {
		requested = "Dockerfile"
	}
	candidates := []string{requested}
	if requested == "Dockerfile" {
		candidates = append(candidates, "dockerfile")
	}
	for _, name := range candidates {
		data, err := contexts.ReadDockerfile(c.Dir, name)
		switch {
		case errors.Is(err, contexts.ErrOutsideContext):
			return nil, "", &apiError{status: http.StatusInternalServerError, msg: err.Error()}
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, "", &apiError{status: http.StatusInternalServerError, msg: fmt.Sprintf("reading Dockerfile %s: %s", name, err)}
		case len(data) == 0:
			return nil, "", &apiError{status: http.StatusInternalServerError,
				msg: fmt.Sprintf("the Dockerfile (%s) cannot be empty", requested)}
		}
		return data, path.Clean(strings.TrimPrefix(name, "./")), nil
	}
	return nil, "", &apiError{status: http.StatusInternalServerError,
		msg: "Cannot locate specified Dockerfile: " + requested}
}
