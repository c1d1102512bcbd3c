package buildkitapi

import (
	"crypto/sha256"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	fstypes "github.com/tonistiigi/fsutil/types"
	"golang.org/x/sys/unix"
)

// maxIndexedEntries bounds the entries all cached contexts' indexes hold together
// (about 150 bytes each). A transfer that would go beyond it drops its context's
// index and goes on with fsutil's receiver, which compares with the disk, and the
// builder then reads that context's files to hash them.
const maxIndexedEntries = 200_000

// contextIndex is what one cached context's directory holds, as the client last
// described it: every entry's metadata as file sync sent it, and each regular file's
// sha256 as it was written. With it, a transfer compares the client's listing with
// memory instead of walking the directory (syncReceiver), and the build's step-cache
// key does not read the files again (it is the context's contexts.FileDigests).
//
// While valid, the index names exactly the entries the directory holds, with their
// metadata: only the receiver writes into a cached context, and a build reads it
// while its entry is busy, never both at once. An index that is not valid describes
// nothing, and transfers into its directory compare with the disk.
type contextIndex struct {
	budget *atomic.Int64 // the cache's: entries any index may still add

	mu      sync.Mutex
	valid   bool
	gen     uint32 // the current or last transfer
	entries map[string]*indexEntry
	// children are the entries of each directory, for List: made by its first call
	// in a build, dropped when the build releases the context.
	children map[string][]childEntry
}

type childEntry struct {
	name string
	e    *indexEntry
}

// indexEntry is one path of a cached context (112 bytes: the fields are ordered so).
type indexEntry struct {
	mode               uint32 // os.FileMode bits, as file sync sends them
	uid, gid           uint32
	devmajor, devminor uint32
	gen                uint32 // the transfer that last named it
	written            uint32 // the transfer that last wrote its content
	hashed             bool   // sum is the content's (a regular file, completely written)
	size, mtime        int64  // for a hard link, as the client sent them (size 0)
	link               string // a symlink's target, or the path a hard link shares
	xattrs             string // xattrKey of the extended attributes, "" for none
	sum                [sha256.Size]byte
}

func newContextIndex(budget *atomic.Int64) *contextIndex {
	return &contextIndex{budget: budget, valid: true, entries: map[string]*indexEntry{}}
}

// entryOf is the entry a stat describes (not hashed, no generation).
func entryOf(st *fstypes.Stat) indexEntry {
	return indexEntry{
		mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, mtime: st.ModTime,
		link: st.Linkname, devmajor: uint32(st.Devmajor), devminor: uint32(st.Devminor), xattrs: xattrKey(st.Xattrs),
	}
}

// xattrKey is a canonical text of extended attributes, for comparing them.
func xattrKey(x map[string][]byte) string {
	if len(x) == 0 {
		return ""
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.Write(x[k])
		b.WriteByte(0)
	}
	return b.String()
}

// sameMetadata reports whether e describes what o does: the comparison file sync
// makes (mode, owner, device, link, and size and time but for directories), and
// also a directory's time and the extended attributes.
func (e *indexEntry) sameMetadata(o *indexEntry) bool {
	return e.mode == o.mode && e.uid == o.uid && e.gid == o.gid && e.size == o.size &&
		e.mtime == o.mtime && e.link == o.link && e.devmajor == o.devmajor &&
		e.devminor == o.devminor && e.xattrs == o.xattrs
}

func (e *indexEntry) isDir() bool { return fs.FileMode(e.mode).IsDir() }

// isFile reports a regular file with content of its own (not a hard link).
func (e *indexEntry) isFile() bool { return fs.FileMode(e.mode).IsRegular() && e.link == "" }

func (e *indexEntry) isHardlink() bool { return fs.FileMode(e.mode).IsRegular() && e.link != "" }

// FileDigest implements contexts.FileDigests: the sha256 of a file the receiver
// wrote, while its size and time are still those it wrote.
func (x *contextIndex) FileDigest(rel string, info fs.FileInfo) (string, bool) {
	x.mu.Lock()
	e, ok := x.entries[rel]
	if ok && e.isHardlink() {
		e, ok = x.entries[e.link]
	}
	var k indexEntry
	if ok {
		k = *e
	}
	valid := x.valid
	x.mu.Unlock()
	if !ok || !valid || !k.hashed || !info.Mode().IsRegular() || info.Size() != k.size || info.ModTime().UnixNano() != k.mtime {
		return "", false
	}
	return digest.NewDigestFromBytes(digest.SHA256, k.sum[:]).String(), true
}

// List implements contexts.DirListing: a directory's entries as lstat would give
// them (a symlink's permissions are 0777, a hard link has its file's metadata).
func (x *contextIndex) List(rel string) ([]fs.FileInfo, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.valid {
		return nil, false
	}
	if rel != "." {
		if e := x.entries[rel]; e == nil || !e.isDir() {
			return nil, false
		}
	}
	if x.children == nil {
		x.children = map[string][]childEntry{}
		for p, e := range x.entries {
			parent, name := splitSyncPath(p)
			x.children[parent] = append(x.children[parent], childEntry{name, e})
		}
		for _, c := range x.children {
			sort.Slice(c, func(i, j int) bool { return c[i].name < c[j].name })
		}
	}
	c := x.children[rel]
	out := make([]fs.FileInfo, len(c))
	for i, ch := range c {
		e := ch.e
		if e.isHardlink() {
			if t := x.entries[e.link]; t != nil {
				e = t
			}
		}
		out[i] = &entryInfo{name: ch.name, e: e}
	}
	return out, true
}

// dropListing forgets the directories' entries List gathered: the build is over.
func (x *contextIndex) dropListing() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.children = nil
}

// entryInfo is an index entry as an fs.FileInfo. It points into the index, which no
// transfer changes while a build lists it (the context's entry is busy).
type entryInfo struct {
	name string
	e    *indexEntry
}

func (i *entryInfo) Name() string       { return i.name }
func (i *entryInfo) Size() int64        { return i.e.size }
func (i *entryInfo) ModTime() time.Time { return time.Unix(0, i.e.mtime) }
func (i *entryInfo) IsDir() bool        { return i.e.isDir() }

func (i *entryInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.e.mode)
	if m&fs.ModeSymlink != 0 {
		m |= 0o777
	}
	return m
}

// Sys is, for a device, a stat with its number and owner (what the cache key reads
// of it); nil for the others, which no reader of a listing takes for a real stat.
func (i *entryInfo) Sys() any {
	if fs.FileMode(i.e.mode)&fs.ModeDevice == 0 {
		return nil
	}
	return &syscall.Stat_t{Uid: i.e.uid, Gid: i.e.gid, Rdev: unix.Mkdev(i.e.devmajor, i.e.devminor)}
}

// usable reports whether the index describes its directory.
func (x *contextIndex) usable() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.valid
}

// invalidate forgets everything: the directory is no longer described.
func (x *contextIndex) invalidate() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.budget.Add(int64(len(x.entries)))
	x.entries, x.children = map[string]*indexEntry{}, nil
	x.valid = false
}

// release gives the entries' share of the budget back: the context is gone.
func (x *contextIndex) release() { x.invalidate() }

// moved adjusts the index to a copy of its directory made by contexts.CopyTree,
// which leaves out devices, FIFOs and extended attributes, and sets a directory's
// time before filling it: the devices and FIFOs go from the index (the next transfer
// makes them again), and the times of directories and of what has extended
// attributes become unknown, so the next transfer sets a directory's metadata again
// and writes such a file again.
func (x *contextIndex) moved() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.children = nil
	for p, e := range x.entries {
		m := fs.FileMode(e.mode)
		switch {
		case m&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeCharDevice) != 0:
			x.forgetLocked(p)
		case m.IsDir() || e.xattrs != "":
			e.mtime = -1
		}
	}
}

// forgetLocked drops p.
func (x *contextIndex) forgetLocked(p string) {
	if _, ok := x.entries[p]; ok {
		delete(x.entries, p)
		x.budget.Add(1)
	}
}

// forgetBelowLocked drops every path below p.
func (x *contextIndex) forgetBelowLocked(p string) {
	prefix := p + "/"
	for q := range x.entries {
		if strings.HasPrefix(q, prefix) {
			delete(x.entries, q)
			x.budget.Add(1)
		}
	}
}

// sha256Sum is the sha256 a hashed file's digest holds.
func sha256Sum(h interface{ Sum([]byte) []byte }) (sum [sha256.Size]byte) {
	copy(sum[:], h.Sum(nil))
	return sum
}
