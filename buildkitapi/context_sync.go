package buildkitapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unsafe"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	fstypes "github.com/tonistiigi/fsutil/types"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/metadata"

	"github.com/kiln-build/kiln/nettimeout"
)

// errIndexFull ends a transfer whose context's index would go beyond what all indexes
// may hold (maxIndexedEntries): the index goes, and the transfer starts again with
// fsutil's receiver.
var errIndexFull = errors.New("the context indexes are full")

// errAborted marks what a failed transfer leaves half done.
var errAborted = errors.New("the transfer failed")

// errNoIndexedSync says this receiver cannot run here (the context has no index, the
// client no DiffCopy, or the kernel no openat2): fsutil's receiver does the transfer.
var errNoIndexedSync = errors.New("indexed file sync unavailable")

// syncStream is what the receiver needs of a file-sync stream (fsutil.Stream).
type syncStream interface {
	RecvMsg(any) error
	SendMsg(any) error
	Context() context.Context
}

// openDiffCopy opens the client's file-sync stream of one local with exclude patterns,
// as filesync.FSSync does: the options travel as headers, percent-encoded (and marked
// so) when a value is not ASCII.
func openDiffCopy(ctx context.Context, caller session.Caller, name string, excludes []string) (syncStream, error) {
	if !caller.Supports(session.MethodURL(filesync.FileSync_ServiceDesc.ServiceName, "diffcopy")) {
		return nil, errNoIndexedSync
	}
	md := metadata.MD{}
	headerValues(md, "dir-name", []string{name})
	if excludes != nil {
		headerValues(md, "exclude-patterns", excludes)
	}
	ctx = metadata.NewOutgoingContext(caller.Context(ctx), md)
	return filesync.NewFileSyncClient(caller.Conn()).DiffCopy(ctx)
}

// headerValues sets key to values, percent-encoding them all (and setting key-encoded)
// when one is not ASCII, as the client's file-sync server decodes them.
func headerValues(md metadata.MD, key string, values []string) {
	encode := false
	for _, v := range values {
		for _, r := range v {
			if r > unicode.MaxASCII {
				encode = true
			}
		}
	}
	if !encode {
		md[key] = values
		return
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = url.QueryEscape(v)
	}
	md[key], md[key+"-encoded"] = out, []string{"1"}
}

// syncReceiver is the receiving side of BuildKit's file-sync protocol (DiffCopy)
// for a cached context: it compares the client's listing with the context's index
// instead of walking the directory, asks for the content of the files that differ,
// and writes with system calls relative to directory descriptors. What the protocol
// is: the client sends a STAT packet per entry in walk order (an empty one ends the
// listing), the receiver REQuests files by their position in it, the client sends
// each file's DATA in chunks (an empty chunk ends it, the chunks of up to four files
// interleave), and the receiver's FIN ends the transfer.
//
// Nothing the client sends escapes the directory: a path must be clean and relative,
// its directory sent as a directory before it, and every operation resolves beneath
// the directory without following symlinks.
type syncReceiver struct {
	stream   syncStream
	cancel   func() // ends the stream
	dir      string
	idx      *contextIndex // locked by run
	filter   func(string, *fstypes.Stat) bool
	refused  func() error // why the filter refused an entry
	progress func(int, bool)
	stall    time.Duration

	rootFD   int
	root     *os.Root // for removing trees, opened when first needed
	uid, gid uint32   // the owner of what the receiver creates
	umask    uint32

	sendMu sync.Mutex

	gen     uint32
	nextID  uint32
	pending map[uint32]*pendingFile
	reqs    *requestQueue
	links   []string        // hard links to make once every file is complete
	touched map[string]bool // directories whose time to set at the end

	parentPath string // the last parent directory opened, and its descriptor
	parentFD   int
}

type pendingFile struct {
	path string
	e    *indexEntry
	fd   int // -1 until its first bytes arrive
	h    hash.Hash
	n    int64
}

// receiveIndexed runs one transfer of the client's local into dir, comparing with
// and updating idx. It fails with errNoIndexedSync before anything is transferred
// when it cannot run here, and with errIndexFull when the index outgrew the budget.
func receiveIndexed(ctx context.Context, caller session.Caller, name string, excludes []string, dir string, idx *contextIndex, opt syncOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return syncInto(ctx, cancel, func(ctx context.Context) (syncStream, error) {
		return openDiffCopy(ctx, caller, name, excludes)
	}, dir, idx, opt)
}

// syncOptions are a transfer's checks and reports.
type syncOptions struct {
	// filter sees each entry of the listing; false refuses it, and the transfer.
	filter func(string, *fstypes.Stat) bool
	// refused says why the filter refused.
	refused func() error
	// progress hears the bytes received so far (nil: nobody).
	progress func(int, bool)
	// stall is how long the client may send nothing (0: nettimeout.DefaultStall).
	stall time.Duration
}

// syncInto receives the stream open returns into dir; cancel ends the stream.
func syncInto(ctx context.Context, cancel func(), open func(context.Context) (syncStream, error), dir string, idx *contextIndex, opt syncOptions) error {
	rootFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	// openat2 (Linux 5.6) resolves every path beneath the directory
	probe, err := unix.Openat2(rootFD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
	if err != nil {
		return errNoIndexedSync
	}
	unix.Close(probe)
	if !idx.usable() {
		return errNoIndexedSync
	}
	stream, err := open(ctx)
	if err != nil {
		return err
	}
	if opt.stall <= 0 {
		opt.stall = nettimeout.DefaultStall
	}
	r := &syncReceiver{
		stream: stream, cancel: cancel, dir: dir, idx: idx, filter: opt.filter, refused: opt.refused, progress: opt.progress, stall: opt.stall,
		rootFD: rootFD, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()), umask: processUmask(),
		pending: map[uint32]*pendingFile{}, reqs: newRequestQueue(), touched: map[string]bool{}, parentFD: -1,
	}
	return r.run(ctx)
}

// run receives until the transfer is complete or fails; a failure leaves the index
// describing the directory (what was half written goes from both).
func (r *syncReceiver) run(ctx context.Context) (err error) {
	x := r.idx
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gen++
	r.gen = x.gen
	x.children = nil

	// Requests go out from a goroutine of their own, so that receiving never waits on
	// sending: the client stops reading requests while it cannot send data.
	reqDone := make(chan struct{})
	var reqErr error
	go func() { reqErr = r.reqs.send(r.send); close(reqDone) }()
	stopRequests := func() error {
		r.reqs.close()
		<-reqDone
		return reqErr
	}
	defer func() {
		if err != nil {
			r.cancel() // a request blocked on the stream returns
		}
		if e := stopRequests(); err == nil && e != nil {
			err = e
		}
		if err != nil {
			r.abort()
		}
		r.closeParent()
		if r.root != nil {
			r.root.Close()
		}
	}()

	size := 0
	if r.progress != nil {
		defer func() { r.progress(size, true) }()
	}
	// A client that sends nothing for the stall limit is cut off.
	var stalled atomic.Bool
	idle := time.AfterFunc(r.stall, func() { stalled.Store(true); r.cancel() })
	defer idle.Stop()
	statsDone := false
	var p fstypes.Packet
	for {
		p.ResetVT()
		if err := r.stream.RecvMsg(&p); err != nil {
			switch {
			case stalled.Load():
				return fmt.Errorf("the client sent nothing of the build context for %v (%s)", r.stall, nettimeout.StallSetting)
			case errors.Is(err, io.EOF):
				return errors.New("the client ended the transfer before it was complete")
			}
			return err
		}
		idle.Reset(r.stall)
		if r.progress != nil {
			size += p.SizeVT()
			r.progress(size, false)
		}
		switch p.Type {
		case fstypes.PACKET_ERR:
			return fmt.Errorf("error from the client: %s", p.Data)
		case fstypes.PACKET_STAT:
			if statsDone {
				return errors.New("the client sent an entry after the end of its listing")
			}
			if p.Stat == nil {
				statsDone = true
				break
			}
			id := r.nextID
			r.nextID++
			if err := r.stat(id, p.Stat); err != nil {
				return err
			}
		case fstypes.PACKET_DATA:
			if err := r.data(p.ID, p.Data); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the client sent a packet of type %v during the transfer", p.Type)
		}
		if statsDone && len(r.pending) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
	}
	if err := stopRequests(); err != nil {
		return err
	}
	if err := r.finish(); err != nil {
		return err
	}
	if err := r.send(&fstypes.Packet{Type: fstypes.PACKET_FIN}); err != nil {
		return err
	}
	// The client answers FIN and ends the stream. Everything has arrived by then: a
	// client that keeps the stream open is not waited for beyond finWait.
	var gaveUp atomic.Bool
	t := time.AfterFunc(finWait, func() { gaveUp.Store(true); r.cancel() })
	defer t.Stop()
	for {
		p.ResetVT()
		if err := r.stream.RecvMsg(&p); err != nil {
			if errors.Is(err, io.EOF) || gaveUp.Load() {
				break
			}
			return err
		}
	}
	if cs, ok := r.stream.(interface{ CloseSend() error }); ok {
		cs.CloseSend()
	}
	return nil
}

// finWait is how long a complete transfer waits for the client to end its stream.
var finWait = 10 * time.Second

func (r *syncReceiver) send(p *fstypes.Packet) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	return r.stream.SendMsg(p)
}

// stat handles one entry of the client's listing.
func (r *syncReceiver) stat(id uint32, st *fstypes.Stat) error {
	p := st.Path
	if err := checkSyncPath(p); err != nil {
		return err
	}
	x := r.idx
	old := x.entries[p]
	if old != nil && old.gen == r.gen {
		return fmt.Errorf("the client sent %q twice", p)
	}
	parent, base := splitSyncPath(p)
	if parent != "." {
		if pe := x.entries[parent]; pe == nil || pe.gen != r.gen || !pe.isDir() {
			return fmt.Errorf("the client sent %q before its directory", p)
		}
	}
	if !r.filter(p, st) {
		return r.refused()
	}
	ne := entryOf(st)
	ne.gen = r.gen
	mode := fs.FileMode(ne.mode)
	switch {
	case mode&fs.ModeType&^(fs.ModeDir|fs.ModeSymlink|fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0:
		return fmt.Errorf("the client sent %q of an unknown type (mode %v)", p, mode)
	case ne.isHardlink():
		if t := x.entries[ne.link]; t == nil || t.gen != r.gen || !t.isFile() {
			return fmt.Errorf("the client sent %q as a hard link to %q, which is not a file it sent before", p, ne.link)
		}
	case mode&fs.ModeSymlink != 0 && ne.link == "":
		return fmt.Errorf("the client sent the symlink %q without a target", p)
	}
	if old != nil && old.sameMetadata(&ne) && !(ne.isHardlink() && x.entries[ne.link].written == r.gen) {
		old.gen = r.gen
		return nil
	}
	if old == nil {
		if x.budget.Add(-1) < 0 {
			x.budget.Add(1)
			return errIndexFull
		}
	}
	if old != nil && !(old.isDir() && ne.isDir()) {
		if err := r.remove(p, old); err != nil {
			return err
		}
	}
	pfd, err := r.parent(parent) // after remove, which may close the cached one
	if err != nil {
		return err
	}
	if old != nil && old.isDir() && ne.isDir() {
		*old = ne
		r.touched[p] = true
		return r.dirMetadata(pfd, base, p, old, false)
	}
	e := &indexEntry{}
	*e = ne
	x.entries[p] = e
	r.touched[parent] = true
	switch {
	case mode.IsDir():
		if err := unix.Mkdirat(pfd, base, uint32(mode.Perm())); err != nil {
			return pathErr("creating the directory", p, err)
		}
		r.touched[p] = true
		return r.dirMetadata(pfd, base, p, e, true)
	case mode&fs.ModeSymlink != 0:
		if err := unix.Symlinkat(e.link, pfd, base); err != nil {
			x.forgetLocked(p)
			return pathErr("creating the symlink", p, err)
		}
		return r.discardOnError(p, r.nodeMetadata(pfd, base, p, e, false))
	case e.isHardlink():
		r.links = append(r.links, p)
		return nil
	case mode.IsRegular():
		e.written = r.gen
		f := &pendingFile{path: p, e: e, fd: -1}
		if st.Size == 0 {
			fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
			if err != nil {
				x.forgetLocked(p)
				return pathErr("creating", p, err)
			}
			f.fd, f.h = fd, hashes.Get().(hash.Hash)
			f.h.Reset()
			return r.complete(f)
		}
		r.pending[id] = f
		return r.request(id)
	default:
		typ := uint32(unix.S_IFIFO)
		if mode&fs.ModeCharDevice != 0 {
			typ = unix.S_IFCHR
		} else if mode&fs.ModeDevice != 0 {
			typ = unix.S_IFBLK
		}
		if err := unix.Mknodat(pfd, base, typ|uint32(mode.Perm()), int(unix.Mkdev(e.devmajor, e.devminor))); err != nil {
			x.forgetLocked(p)
			return pathErr("creating the device or FIFO", p, err)
		}
		return r.discardOnError(p, r.nodeMetadata(pfd, base, p, e, true))
	}
}

// request asks the client for a file's content.
func (r *syncReceiver) request(id uint32) error {
	r.reqs.push(id)
	return nil
}

// requestQueue holds the requests for files until its goroutine sends them.
type requestQueue struct {
	mu     sync.Mutex
	ids    []uint32
	closed bool
	wake   chan struct{}
}

func newRequestQueue() *requestQueue { return &requestQueue{wake: make(chan struct{}, 1)} }

func (q *requestQueue) push(id uint32) {
	q.mu.Lock()
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	q.signal()
}

// close ends send once it has sent what was pushed.
func (q *requestQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *requestQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// send sends the requests as they come, until the queue is closed and empty or
// sending fails.
func (q *requestQueue) send(send func(*fstypes.Packet) error) error {
	var ids []uint32
	for {
		q.mu.Lock()
		ids, q.ids = q.ids, ids[:0]
		closed := q.closed
		q.mu.Unlock()
		for _, id := range ids {
			if err := send(&fstypes.Packet{Type: fstypes.PACKET_REQ, ID: id}); err != nil {
				return err
			}
		}
		if len(ids) == 0 {
			if closed {
				return nil
			}
			<-q.wake
		}
	}
}

// data writes a chunk of a requested file; an empty chunk completes the file.
func (r *syncReceiver) data(id uint32, b []byte) error {
	f := r.pending[id]
	if f == nil {
		return fmt.Errorf("the client sent data for file %d, which was not asked for", id)
	}
	if f.fd < 0 {
		fd, err := unix.Openat2(r.rootFD, f.path, &unix.OpenHow{
			Flags:   unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Mode:    uint64(fs.FileMode(f.e.mode).Perm()),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			return pathErr("creating", f.path, err)
		}
		f.fd, f.h = fd, hashes.Get().(hash.Hash)
		f.h.Reset()
	}
	if len(b) == 0 {
		delete(r.pending, id)
		return r.complete(f)
	}
	if f.n+int64(len(b)) > f.e.size {
		return fmt.Errorf("the client sent more than the %d bytes it listed for %q: did the file change during the build?", f.e.size, f.path)
	}
	for rest := b; len(rest) > 0; {
		n, err := unix.Write(f.fd, rest)
		if err != nil {
			return pathErr("writing", f.path, err)
		}
		rest = rest[n:]
	}
	f.h.Write(b)
	f.n += int64(len(b))
	return nil
}

// complete gives a written file its metadata and closes it; the index then knows its
// digest and the size it has. A file it cannot complete is discarded.
func (r *syncReceiver) complete(f *pendingFile) (err error) {
	defer func() { err = r.discardOnError(f.path, err) }()
	fd := f.fd
	f.fd = -1
	defer unix.Close(fd)
	e := f.e
	mode := fs.FileMode(e.mode)
	if e.uid != r.uid || e.gid != r.gid {
		if err := unix.Fchown(fd, int(e.uid), int(e.gid)); err != nil {
			return pathErr("setting the owner of", f.path, err)
		}
	}
	if r.needsChmod(mode) {
		if err := r.chmod(f.path, mode); err != nil {
			return err
		}
	}
	r.setXattrs(fd, e)
	if err := futimens(fd, e.mtime); err != nil {
		return pathErr("setting the time of", f.path, err)
	}
	e.size, e.sum, e.hashed = f.n, sha256Sum(f.h), true
	hashes.Put(f.h)
	f.h = nil
	return nil
}

// hashes are the files' sha256 states: the client sends at most four files at once,
// and a context of 10,000 requested files needs no more states than that.
var hashes = sync.Pool{New: func() any { return sha256.New() }}

// discardOnError removes the node p from the disk and the index when err is not nil
// (it was made, but not as the index describes it), and returns err.
func (r *syncReceiver) discardOnError(p string, err error) error {
	if err == nil {
		return nil
	}
	parent, base := splitSyncPath(p)
	if pfd, perr := r.parent(parent); perr == nil {
		unix.Unlinkat(pfd, base, 0)
	}
	r.idx.forgetLocked(p)
	return err
}

// dirMetadata gives a directory its owner, mode and extended attributes (its time
// comes at the end, once nothing is written into it).
func (r *syncReceiver) dirMetadata(pfd int, base, p string, e *indexEntry, created bool) error {
	mode := fs.FileMode(e.mode)
	owned := e.uid != r.uid || e.gid != r.gid
	if owned || !created {
		if err := unix.Fchownat(pfd, base, int(e.uid), int(e.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathErr("setting the owner of", p, err)
		}
	}
	if !created || r.needsChmod(mode) {
		if err := r.chmod(p, mode); err != nil {
			return err
		}
	}
	if e.xattrs != "" {
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			r.setXattrs(fd, e)
			unix.Close(fd)
		}
	}
	return nil
}

// nodeMetadata gives a symlink, device or FIFO its owner, mode and time.
func (r *syncReceiver) nodeMetadata(pfd int, base, p string, e *indexEntry, chmod bool) error {
	mode := fs.FileMode(e.mode)
	owned := e.uid != r.uid || e.gid != r.gid
	if owned {
		if err := unix.Fchownat(pfd, base, int(e.uid), int(e.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathErr("setting the owner of", p, err)
		}
	}
	if chmod && r.needsChmod(mode) {
		if err := r.chmod(p, mode); err != nil {
			return err
		}
	}
	return r.setTime(pfd, base, p, e.mtime)
}

// chmod sets the mode of p (a directory, file, device or FIFO the receiver made),
// setuid, setgid and sticky included. It is rarely needed: creating with the
// permissions gives the mode but for those bits and the umask.
func (r *syncReceiver) chmod(p string, mode fs.FileMode) error {
	root, err := r.osRoot()
	if err == nil {
		err = root.Chmod(p, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	if err != nil {
		return pathErr("setting the mode of", p, err)
	}
	return nil
}

func (r *syncReceiver) setTime(pfd int, base, p string, mtime int64) error {
	ts := unix.NsecToTimespec(mtime)
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("setting the time of", p, err)
	}
	return nil
}

// setXattrs sets what extended attributes it may; like BuildKit's receiver, it
// leaves out those the file system refuses.
func (r *syncReceiver) setXattrs(fd int, e *indexEntry) {
	for rest := e.xattrs; rest != ""; {
		k, after, _ := strings.Cut(rest, "\x00")
		v, after2, _ := strings.Cut(after, "\x00")
		unix.Fsetxattr(fd, k, []byte(v), 0)
		rest = after2
	}
}

// needsChmod reports whether a node created with mode's permissions (less the
// umask) lacks some of mode: a masked permission, setuid, setgid or sticky.
func (r *syncReceiver) needsChmod(mode fs.FileMode) bool {
	if mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return true
	}
	return uint32(mode.Perm())&r.umask != 0
}

// remove takes away what the index says is at p, to put something else there; a
// directory takes its tree along (and the cached parent descriptor is closed: it may
// be in the tree).
func (r *syncReceiver) remove(p string, old *indexEntry) error {
	if old.isDir() {
		root, err := r.osRoot()
		if err != nil {
			return err
		}
		r.closeParent()
		if err := root.RemoveAll(p); err != nil {
			return fmt.Errorf("removing %q: %w", p, err)
		}
		r.idx.forgetBelowLocked(p)
		return nil
	}
	parent, base := splitSyncPath(p)
	pfd, err := r.parent(parent)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return pathErr("removing", p, err)
	}
	return nil
}

func (r *syncReceiver) osRoot() (*os.Root, error) {
	if r.root == nil {
		root, err := os.OpenRoot(r.dir)
		if err != nil {
			return nil, err
		}
		r.root = root
	}
	return r.root, nil
}

// parent returns a descriptor of directory dir ("." for the top), kept open while the
// next entries are in the same directory, as the client's walk order makes them.
func (r *syncReceiver) parent(dir string) (int, error) {
	if dir == "." {
		return r.rootFD, nil
	}
	if r.parentFD >= 0 && r.parentPath == dir {
		return r.parentFD, nil
	}
	r.closeParent()
	fd, err := unix.Openat2(r.rootFD, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, pathErr("opening the directory", dir, err)
	}
	r.parentPath, r.parentFD = dir, fd
	return fd, nil
}

func (r *syncReceiver) closeParent() {
	if r.parentFD >= 0 {
		unix.Close(r.parentFD)
		r.parentFD, r.parentPath = -1, ""
	}
}

// finish completes a transfer whose files all arrived: the hard links, the removal of
// what the client no longer has, the directories' times.
func (r *syncReceiver) finish() error {
	x := r.idx
	for _, p := range r.links {
		e := x.entries[p]
		t := x.entries[e.link]
		parent, base := splitSyncPath(p)
		tparent, tbase := splitSyncPath(e.link)
		tfd, err := r.parent(tparent)
		if err != nil {
			return err
		}
		// a second descriptor: the cached one may change below
		tfd, err = unix.Openat(tfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return pathErr("opening the directory", tparent, err)
		}
		pfd, err := r.parent(parent)
		if err == nil {
			err = unix.Linkat(tfd, tbase, pfd, base, 0)
			if err != nil {
				err = pathErr("linking", p, err)
			}
		}
		unix.Close(tfd)
		if err != nil {
			return err
		}
		e.sum, e.hashed = t.sum, t.hashed
	}
	r.links = nil

	var gone []string
	for p, e := range x.entries {
		if e.gen != r.gen {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone) // a directory before what is below it
	for _, p := range gone {
		e := x.entries[p]
		if e == nil {
			continue // below a directory removed already, which took it from the index
		}
		parent, _ := splitSyncPath(p)
		if err := r.remove(p, e); err != nil {
			return err
		}
		x.forgetLocked(p)
		r.touched[parent] = true
	}

	for _, d := range slices.Sorted(maps.Keys(r.touched)) {
		e := x.entries[d]
		if d == "." || e == nil || !e.isDir() {
			continue
		}
		parent, base := splitSyncPath(d)
		pfd, err := r.parent(parent)
		if err != nil {
			return err
		}
		if err := r.setTime(pfd, base, d, e.mtime); err != nil {
			return err
		}
	}
	r.touched = map[string]bool{}
	return nil
}

// abort leaves the index describing the directory after a failed transfer: files
// half written are removed and forgotten, as are hard links not yet made, and the
// directories written into get an unknown time (the next transfer sets it).
func (r *syncReceiver) abort() {
	x := r.idx
	for _, f := range r.pending {
		if f.fd >= 0 {
			unix.Close(f.fd)
			r.discardOnError(f.path, errAborted)
		}
		x.forgetLocked(f.path)
	}
	r.pending = map[uint32]*pendingFile{}
	for _, p := range r.links {
		x.forgetLocked(p)
	}
	r.links = nil
	for d := range r.touched {
		if e := x.entries[d]; e != nil {
			e.mtime = -1
		}
	}
	r.closeParent()
}

// checkSyncPath accepts a clean, relative path without a parent reference.
func checkSyncPath(p string) error {
	if p == "" || p == "." || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0 ||
		p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("the client sent an invalid path %q", p)
	}
	return nil
}

// splitSyncPath splits a checked path into its directory ("." at the top) and name.
func splitSyncPath(p string) (string, string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

func pathErr(op, p string, err error) error {
	return fmt.Errorf("%s %q: %w", op, p, err)
}

// futimens sets an open file's access and modification times.
func futimens(fd int, mtime int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

var umaskOnce = sync.OnceValue(func() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				var m uint32
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					return m
				}
			}
		}
	}
	return 0o777 // unknown: set every mode
})

// processUmask is the process's file mode creation mask.
func processUmask() uint32 { return umaskOnce() }
