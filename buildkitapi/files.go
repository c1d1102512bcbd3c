package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/patternmatcher/ignorefile"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
)

// DefaultContextCacheEntries is how many clients' contexts the server keeps for
// incremental transfer when Config.ContextCacheEntries is 0.
const DefaultContextCacheEntries = 16

// sources are the Dockerfile and the context of one build, received from the client.
type sources struct {
	dockerfile     []byte
	dockerfileName string
	context        *contexts.Context
	release        func(keep bool)
}

// receive pulls the Dockerfile, the ignore file and the context through the client's
// session, in BuildKit's order: the Dockerfile's local first, then the context's
// ignore file, then the context with the ignore patterns, which the client applies.
// The context goes into the client's entry of the context cache, so a rebuild
// transfers only the files that changed since its last build.
func (s *Server) receive(ctx context.Context, caller session.Caller, o *frontendOptions, p *progress) (*sources, error) {
	scratch, err := os.MkdirTemp(s.cfg.Workspace.StateDir, "bk-files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)

	done := p.vertex("[internal] load build definition from " + path.Base(o.filename))
	dfDir, ignoreDir := filepath.Join(scratch, "dockerfile"), filepath.Join(scratch, "ignore")
	for _, d := range []string{dfDir, ignoreDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			done(err)
			return nil, err
		}
	}
	dfName := path.Base(o.filename)
	err = filesync.FSSync(ctx, caller, filesync.FSSendRequestOpt{
		Name:            o.dockerfileKey,
		IncludePatterns: []string{o.filename, o.filename + ".dockerignore"},
		FollowPaths:     []string{o.filename, o.filename + ".dockerignore"},
		DestDir:         dfDir,
		// The Dockerfile, its ignore file and the directories above them.
		Filter: limitFilter(nil, 2+strings.Count(o.filename, "/"), 2*contexts.MaxDockerfileBytes, "the Dockerfile's directory"),
	})
	if err != nil {
		done(err)
		return nil, fmt.Errorf("receiving the Dockerfile: %w", err)
	}
	df, err := contexts.ReadDockerfile(dfDir, o.filename)
	if err != nil {
		done(err)
		return nil, err
	}
	done(nil)

	done = p.vertex("[internal] load .dockerignore")
	patterns, err := s.ignorePatterns(ctx, caller, o, dfDir, ignoreDir)
	done(err)
	if err != nil {
		return nil, err
	}

	done = p.vertex("[internal] load build context")
	key := ""
	if caller.SharedKey() != "" {
		key = caller.SharedKey() + "/" + o.contextKey
	}
	lease, err := s.contexts.acquire(key)
	if err != nil {
		done(err)
		return nil, err
	}
	start := time.Now()
	sent, size, err := s.receiveContext(ctx, caller, o, patterns, lease, p)
	if err != nil {
		lease.release(false, 0)
		done(err)
		return nil, fmt.Errorf("receiving the build context: %w", err)
	}
	done(nil)
	dir := lease.dir()
	release := func(keep bool) { lease.release(keep, size) }
	bctx, err := contexts.FromDirPatterns(dir, patterns)
	if err != nil {
		release(false)
		return nil, err
	}
	bctx.Digests, bctx.Listing = lease.e.index, lease.e.index
	s.cfg.Log.WithFields(map[string]any{"bytes": sent, "duration": time.Since(start), "dir": dir}).Debug("buildkit: context received")
	if obs := s.cfg.Workspace.Observer; obs != nil {
		obs.Transferred(builder.TransferContext, sent)
	}
	return &sources{dockerfile: df, dockerfileName: dfName, context: bctx, release: release}, nil
}

// ignorePatterns returns the patterns that choose the context's files: the
// Dockerfile's own <Dockerfile>.dockerignore when there is one, else the context's
// .dockerignore, as BuildKit's Dockerfile frontend does.
func (s *Server) ignorePatterns(ctx context.Context, caller session.Caller, o *frontendOptions, dfDir, scratch string) ([]string, error) {
	if f, err := os.Open(filepath.Join(dfDir, filepath.FromSlash(o.filename)+".dockerignore")); err == nil {
		defer f.Close()
		return readIgnore(f, path.Base(o.filename)+".dockerignore")
	}
	err := filesync.FSSync(ctx, caller, filesync.FSSendRequestOpt{
		Name:            o.contextKey,
		IncludePatterns: []string{".dockerignore"},
		DestDir:         scratch,
		Filter:          limitFilter(nil, 2, contexts.MaxDockerfileBytes, ".dockerignore"),
	})
	if err != nil {
		return nil, fmt.Errorf("receiving .dockerignore: %w", err)
	}
	f, err := os.Open(filepath.Join(scratch, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readIgnore(f, ".dockerignore")
}

func readIgnore(f *os.File, name string) ([]string, error) {
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return patterns, nil
}

// limitFilter returns a file-sync filter that fails the transfer (through fail, or by
// skipping the rest when fail is nil) once what it has seen exceeds maxEntries
// entries or maxBytes bytes of file content; 0 means no bound. Each entry counts
// once however often the receiver asks about it (entrySeen).
func limitFilter(fail func(error), maxEntries int, maxBytes int64, what string) func(string, *fstypes.Stat) bool {
	var mu sync.Mutex
	var seen entrySeen
	var entries int
	var bytes int64
	var failed bool
	return func(p string, st *fstypes.Stat) bool {
		mu.Lock()
		defer mu.Unlock()
		if failed {
			return false
		}
		if !seen.first(p, st) {
			return true
		}
		entries++
		if os.FileMode(st.Mode).IsRegular() {
			bytes += st.Size
		}
		var err error
		switch {
		case maxEntries > 0 && entries > maxEntries:
			err = fmt.Errorf("%s holds more than %d files and directories (kiln serve --max-context-entries)", what, maxEntries)
		case maxBytes > 0 && bytes > maxBytes:
			err = fmt.Errorf("%s holds more than %s (kiln serve --max-context-size)", what, sizeText(maxBytes))
		}
		if err != nil {
			failed = true
			if fail != nil {
				fail(err)
			}
			return false
		}
		return true
	}
}

// entrySeen tells a file-sync filter's first call for an entry from the others:
// the receiver asks about a new or changed entry twice in a row (comparing, then
// writing), an unchanged one once, again after each deletion it handles in between,
// and about a deletion with an empty stat. The caller serializes calls.
type entrySeen struct{ last string }

// first reports whether the call for p with st is the first for an entry of the
// transfer (false for a deletion).
func (e *entrySeen) first(p string, st *fstypes.Stat) bool {
	if st == nil || st.Path == "" {
		return false
	}
	if p == e.last {
		return false
	}
	e.last = p
	return true
}

// sizeText renders a byte bound as a setting's unit shows it: whole MiB, else bytes.
func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
