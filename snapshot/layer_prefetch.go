package snapshot

import (
	"errors"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// The layer's regular files are read ahead of the tar writer, on a goroutine of their
// own: a layer of many small files (a COPY of a source tree, a RUN that installed a
// package) spends as much time opening, statting, reading and closing them as writing
// and hashing the tar, and the two halves can run on two cores. Planned files are read
// from their sources; files of the root through openat2 beneath the root, refusing
// every symlink, so the reader never leaves the root even before the writer has checked
// a path's directories (a path it cannot open so is left to the writer). Only files that
// fit one buffer are read ahead; the buffers are allocated once per layer and handed
// back by the writer, which bounds the memory and stops the reader when the writer
// falls behind.
const (
	prefetchBuffers    = 16
	prefetchBufferSize = 32 << 10
)

// prefetched is a file read ahead: the stat of the file opened, its content and (for a
// file of the root) its security.capability, or nothing (buf nil) when it was not read
// ahead and the writer reads it itself.
type prefetched struct {
	img  string
	st   unix.Stat_t
	caps string
	buf  []byte // a prefetcher buffer holding the content, or nil
	n    int    // bytes of buf read (less than st.Size when the file shrank)
}

// prefetchItem is one path the reader goes through: planned (from its source) or not
// (from the root).
type prefetchItem struct {
	img     string
	planned *PlannedFile
}

// prefetcher reads planned files ahead in the writer's order (image path order).
type prefetcher struct {
	out  chan *prefetched
	free chan []byte
	stop chan struct{}
	done chan struct{}
	next *prefetched // the writer's one-entry lookahead
}

// startPrefetch starts reading ahead the files among items: the planned ones from
// their sources and, when root is not "", the others from root. It returns nil when
// there is nothing to read ahead.
func startPrefetch(items []item, plan *Plan, root string) *prefetcher {
	var todo []prefetchItem
	seen := map[*PlannedFile]bool{}
	for _, it := range items {
		if it.deleted {
			continue
		}
		f, ok := plan.Lookup(it.img)
		switch {
		case ok && seen[f]: // a second path of a planned file is a hardlink: no content
			continue
		case ok:
			seen[f] = true
		case root == "" || !it.changed:
			continue
		}
		todo = append(todo, prefetchItem{img: it.img, planned: f})
	}
	if len(todo) < 2 {
		return nil
	}
	rootFD := -1
	if root != "" {
		fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		rootFD = fd
		if probe, err := openBeneath(rootFD, "."); err != nil {
			// No openat2 (Linux before 5.6): the root's files are the writer's alone.
			unix.Close(rootFD)
			rootFD = -1
			todo = plannedOnly(todo)
		} else {
			unix.Close(probe)
		}
	}
	if len(todo) < 2 {
		if rootFD >= 0 {
			unix.Close(rootFD)
		}
		return nil
	}
	p := &prefetcher{
		out:  make(chan *prefetched, prefetchBuffers),
		free: make(chan []byte, prefetchBuffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range prefetchBuffers {
		p.free <- make([]byte, prefetchBufferSize)
	}
	go p.run(todo, rootFD)
	return p
}

// plannedOnly keeps the planned items of todo.
func plannedOnly(todo []prefetchItem) []prefetchItem {
	var out []prefetchItem
	for _, it := range todo {
		if it.planned != nil {
			out = append(out, it)
		}
	}
	return out
}

func (p *prefetcher) run(todo []prefetchItem, rootFD int) {
	defer close(p.done)
	defer close(p.out)
	if rootFD >= 0 {
		defer unix.Close(rootFD)
	}
	for _, it := range todo {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.stop:
			return
		}
		r := &prefetched{img: it.img}
		var fd int
		var err error
		if it.planned != nil {
			fd, err = unix.Open(it.planned.Source, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		} else {
			fd, err = openBeneath(rootFD, it.img)
		}
		if err == nil && readAhead(fd, r, buf, it.planned == nil) {
			r.buf = buf
		} else {
			p.free <- buf // the writer reads this one itself
		}
		if err == nil {
			unix.Close(fd)
		}
		select {
		case p.out <- r:
		case <-p.stop:
			return
		}
	}
}

// openBeneath opens the image path img of the root rootFD for reading, refusing to
// resolve any symlink (the writer would not write a file below one) or to leave the
// root.
func openBeneath(rootFD int, img string) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(rootFD, strings.TrimPrefix(img, "/"), how)
	if errors.Is(err, unix.EINTR) {
		fd, err = unix.Openat2(rootFD, strings.TrimPrefix(img, "/"), how)
	}
	return fd, err
}

// readAhead reads the open regular file fd into buf when it fits, with its capability
// when caps is set, reporting whether it did. Anything unusual (an error, another
// type, a larger file) is left to the writer's own read, which reports it.
func readAhead(fd int, r *prefetched, buf []byte, caps bool) bool {
	if err := unix.Fstat(fd, &r.st); err != nil || r.st.Mode&unix.S_IFMT != unix.S_IFREG || r.st.Size > int64(len(buf)) {
		return false
	}
	if caps {
		c, err := fileCapability(fd, r.img)
		if err != nil {
			return false
		}
		r.caps = c
	}
	for r.n < int(r.st.Size) {
		n, err := unix.Read(fd, buf[r.n:r.st.Size])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false
		}
		if n == 0 {
			break // shrank: the writer reports it from n
		}
		r.n += n
	}
	return true
}

// take returns what was read ahead for img, or nil: the writer then reads img itself.
// Entries for paths the writer skipped are dropped on the way.
func (p *prefetcher) take(img string) *prefetched {
	if p == nil {
		return nil
	}
	for {
		if p.next == nil {
			r, ok := <-p.out
			if !ok {
				return nil
			}
			p.next = r
		}
		switch r := p.next; {
		case r.img == img:
			p.next = nil
			if r.buf == nil {
				return nil
			}
			return r
		case r.img < img: // skipped by the writer
			p.next = nil
			p.release(r)
		default: // img was not read ahead
			return nil
		}
	}
}

// content is r's content for writeFileFrom and writePlannedFrom: the bytes read ahead,
// into the tar.
func (r *prefetched) content(tw io.Writer) func() (int64, error) {
	return func() (int64, error) {
		n, err := tw.Write(r.buf[:r.n])
		return int64(n), err
	}
}

// release hands r's buffer back for the next file.
func (p *prefetcher) release(r *prefetched) {
	if r != nil && r.buf != nil {
		p.free <- r.buf
		r.buf = nil
	}
}

// close stops the reader and waits for it.
func (p *prefetcher) close() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}
