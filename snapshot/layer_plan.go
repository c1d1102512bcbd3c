package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Plan lists regular files that a layer takes from their sources instead of from the
// root: COPY's fast path, where nothing later reads the root, so the files are never
// created in it (creating files is what a COPY spends most of its time on). Each
// planned file gets the tar entry, in the same place and with the same bytes, that
// writing it into the root with the planned owner, mode and mtime and then writing the
// layer from the root would give. Paths of one PlannedFile value are hardlinks to each
// other, as the root would hold them. A Plan is used by one goroutine at a time.
type Plan struct {
	files map[string]*PlannedFile
}

// PlannedFile is one regular file of a Plan: its content comes from Source and its
// metadata from the fields, as the copy would have set them in the root.
type PlannedFile struct {
	// Source is the host path of the file to read the content from.
	Source string
	// Mode holds the permission, set-id and sticky bits (unix, 0o7777).
	Mode uint32
	// UID and GID are the numeric owner.
	UID, GID int
	// MTime is the modification time in whole seconds since the Unix epoch.
	MTime int64
}

// NewPlan returns an empty Plan.
func NewPlan() *Plan { return &Plan{files: map[string]*PlannedFile{}} }

// Add plans the regular file f at the image path img, replacing what was planned
// there. Adding the same f at several paths makes them hardlinks.
func (p *Plan) Add(img string, f *PlannedFile) { p.files[path.Clean("/"+img)] = f }

// Lookup returns the file planned at img.
func (p *Plan) Lookup(img string) (*PlannedFile, bool) {
	if p == nil {
		return nil, false
	}
	f, ok := p.files[path.Clean("/"+img)]
	return f, ok
}

// Remove forgets what was planned at img, and with below also everything planned
// under it (a directory of the root being removed).
func (p *Plan) Remove(img string, below bool) {
	if p == nil {
		return
	}
	img = path.Clean("/" + img)
	delete(p.files, img)
	if !below {
		return
	}
	prefix := strings.TrimSuffix(img, "/") + "/"
	for k := range p.files {
		if strings.HasPrefix(k, prefix) {
			delete(p.files, k)
		}
	}
}

// Len returns how many paths are planned.
func (p *Plan) Len() int {
	if p == nil {
		return 0
	}
	return len(p.files)
}

// WithPlan makes WriteLayer take the planned paths' entries from the plan (see Plan)
// rather than from the root. A nil or empty plan changes nothing.
func WithPlan(p *Plan) LayerOption {
	return func(lc *layerConfig) { lc.plan = p }
}

// writePlanned writes the entry of a planned regular file, or a hardlink to the
// first path this layer wrote for the same PlannedFile. The header is built by the
// same code as for a file of the root, from the stat the root's file would have had.
func (lw *layerWriter) writePlanned(img string, f *PlannedFile) error {
	if r := lw.prefetch.take(img); r != nil {
		defer lw.prefetch.release(r)
		return lw.writePlannedFrom(img, f, &r.st, r.content(lw.tw))
	}
	fd, err := unix.Open(f.Source, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: f.Source, Err: err}
	}
	defer unix.Close(fd)
	var src unix.Stat_t
	if err := unix.Fstat(fd, &src); err != nil {
		return &os.PathError{Op: "fstat", Path: f.Source, Err: err}
	}
	return lw.writePlannedFrom(img, f, &src, func() (int64, error) { return lw.copyFile(fd, f.Source, src.Size) })
}

// writePlannedFrom writes the entry of the planned file f, whose source has the stat
// src, taking the content from content (the source read now, or read ahead).
func (lw *layerWriter) writePlannedFrom(img string, f *PlannedFile, src *unix.Stat_t, content func() (int64, error)) error {
	if src.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("writing %s: its source %s is no longer a regular file", img, f.Source)
	}
	st := unix.Stat_t{Mode: unix.S_IFREG | f.Mode&0o7777, Uid: uint32(f.UID), Gid: uint32(f.GID), Size: src.Size}
	st.Mtim.Sec = f.MTime
	hdr := lw.header(img, &st)
	if lw.planLinks == nil {
		lw.planLinks = map[*PlannedFile]string{}
	}
	if first, ok := lw.planLinks[f]; ok {
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = first
		return lw.writeHeader(img, hdr)
	}
	lw.planLinks[f] = hdr.Name
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size
	if err := lw.writeHeader(img, hdr); err != nil {
		return err
	}
	n, err := content()
	if err != nil {
		return fmt.Errorf("writing %s: %w", img, err)
	}
	if n != st.Size {
		return fmt.Errorf("writing %s: %w (%d of %d bytes)", img, errShrank, n, st.Size)
	}
	return nil
}

// errShrank reports a planned file's source that shrank while the layer was written.
var errShrank = errors.New("the source file shrank while being read")
