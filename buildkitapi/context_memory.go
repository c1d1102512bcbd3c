package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/kiln-build/kiln/contexts"
)

// errOutgrewMemory ends a transfer into memory that would hold more than its share:
// the context moves to disk and the transfer starts again there.
var errOutgrewMemory = errors.New("the build context outgrew its memory")

// receiveContext receives the context into the lease's directory with BuildKit's file
// sync, which asks the client only for the files that differ from what the directory
// holds. A context in memory that outgrows its share moves to disk, and the transfer
// goes on there, asking only for what the move did not bring; one whose index
// outgrows the budget goes on with fsutil's receiver, comparing with the disk. It
// returns the bytes the client sent and the bytes the context's files hold.
func (s *Server) receiveContext(ctx context.Context, caller session.Caller, o *frontendOptions, patterns []string, lease *contextLease, p *progress) (sent, size int64, err error) {
	for {
		n, size, err := s.syncContext(ctx, caller, o, patterns, lease, sent, p)
		sent += n
		switch {
		case errors.Is(err, errOutgrewMemory):
			if err := lease.toDisk(); err != nil {
				return sent, 0, err
			}
		case errors.Is(err, errIndexFull):
			lease.e.index.invalidate()
		default:
			return sent, size, err
		}
	}
}

// syncContext is one file sync of the context into the lease's directory: by the
// context's index (syncReceiver) while it has one, else by fsutil's receiver. In
// memory, it fails with errOutgrewMemory once the files would hold more than the
// lease's share. base is what earlier attempts sent, for the progress shown.
func (s *Server) syncContext(ctx context.Context, caller session.Caller, o *frontendOptions, patterns []string, lease *contextLease, base int64, p *progress) (sent, size int64, err error) {
	memLimit := lease.memLimit()
	var limitErr error
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	limit := limitFilter(func(err error) { limitErr = err; cancel(err) },
		s.cfg.MaxContextEntries, s.cfg.MaxContextBytes, "the build context")
	var outgrew atomic.Bool
	var count sizeCounter
	filter := func(path string, st *fstypes.Stat) bool {
		if !limit(path, st) {
			return false
		}
		if n := count.add(path, st); memLimit > 0 && n > memLimit {
			if !outgrew.Swap(true) {
				cancel(errOutgrewMemory)
			}
			return false
		}
		return true
	}
	var n atomic.Int64
	progress := func(k int, last bool) {
		n.Store(int64(k))
		p.transfer("transferring context", base+int64(k), last && !outgrew.Load())
	}
	idx := lease.e.index
	err = receiveIndexed(sctx, caller, o.contextKey, patterns, lease.dir(), idx, syncOptions{
		filter: filter, refused: func() error { return context.Cause(sctx) }, progress: progress,
		stall: s.cfg.Registry.Net.StallTimeout(),
	})
	if errors.Is(err, errNoIndexedSync) {
		idx.invalidate()
		err = filesync.FSSync(sctx, caller, filesync.FSSendRequestOpt{
			Name:            o.contextKey,
			ExcludePatterns: patterns,
			DestDir:         lease.dir(),
			Filter:          filter,
			ProgressCb:      progress,
		})
	}
	switch {
	case outgrew.Load():
		return n.Load(), 0, errOutgrewMemory
	case limitErr != nil:
		err = limitErr
	}
	return n.Load(), count.total(), err
}

// sizeCounter adds up the bytes a context's files take on a tmpfs (whole pages), each
// file once (entrySeen).
type sizeCounter struct {
	mu    sync.Mutex
	seen  entrySeen
	bytes int64
}

// pageSize is the unit a tmpfs stores file data in.
const pageSize = 4096

func (c *sizeCounter) add(path string, st *fstypes.Stat) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen.first(path, st) && os.FileMode(st.Mode).IsRegular() {
		c.bytes += (st.Size + pageSize - 1) / pageSize * pageSize
	}
	return c.bytes
}

func (c *sizeCounter) total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// toDisk moves the lease's context from memory to a new directory on disk, keeping
// what file sync compares (mode, owner, size, modification time), so that the next
// transfer into it skips what had arrived completely.
func (l *contextLease) toDisk() error {
	c := l.c
	c.mu.Lock()
	if !l.e.mem {
		c.mu.Unlock()
		return nil
	}
	old := l.e.path
	dir, err := c.newDirLocked(c.dir)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := contexts.CopyTree(old, dir, true); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("moving the build context from memory to disk: %w", err)
	}
	l.e.index.moved()
	c.mu.Lock()
	l.e.path, l.e.mem, l.e.size = dir, false, 0
	delete(c.inMem, l.e)
	c.mu.Unlock()
	return os.RemoveAll(old)
}
