package snapshot

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Planned files are read ahead of the tar writer, on a goroutine of their own: a COPY
// of many small files spends as much time opening, statting, reading and closing them
// as writing and hashing the tar, and the two halves can run on two cores. Only files
// that fit one buffer are read ahead; the buffers are allocated once per layer and
// handed back by the writer, which bounds the memory and stops the reader when the
// writer falls behind.
const (
	prefetchBuffers    = 16
	prefetchBufferSize = 32 << 10
)

// prefetched is a planned file read ahead: its source's stat and content, or nothing
// (buf nil) when it was not read ahead and the writer reads it itself.
type prefetched struct {
	img string
	st  unix.Stat_t
	buf []byte // a prefetcher buffer holding the content, or nil
	n   int    // bytes of buf read (less than st.Size when the file shrank)
}

// prefetcher reads planned files ahead in the writer's order (image path order).
type prefetcher struct {
	out  chan *prefetched
	free chan []byte
	stop chan struct{}
	done chan struct{}
	next *prefetched // the writer's one-entry lookahead
}

// startPrefetch starts reading the planned files among items ahead. It returns nil
// when there is nothing to read ahead.
func startPrefetch(items []item, plan *Plan) *prefetcher {
	var todo []item
	seen := map[*PlannedFile]bool{}
	for _, it := range items {
		if it.deleted {
			continue
		}
		f, ok := plan.Lookup(it.img)
		if !ok || seen[f] { // a second path of a planned file is a hardlink: no content
			continue
		}
		seen[f] = true
		todo = append(todo, it)
	}
	if len(todo) < 2 {
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
	go p.run(todo, plan)
	return p
}

func (p *prefetcher) run(todo []item, plan *Plan) {
	defer close(p.done)
	defer close(p.out)
	for _, it := range todo {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.stop:
			return
		}
		f, _ := plan.Lookup(it.img)
		r := &prefetched{img: it.img}
		if readAhead(f.Source, r, buf) {
			r.buf = buf
		} else {
			p.free <- buf // the writer reads this one itself
		}
		select {
		case p.out <- r:
		case <-p.stop:
			return
		}
	}
}

// readAhead reads the regular file at source into buf when it fits, reporting whether
// it did. Anything unusual (an error, another type, a larger file) is left to the
// writer's own read, which reports it.
func readAhead(source string, r *prefetched, buf []byte) bool {
	fd, err := unix.Open(source, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &r.st); err != nil || r.st.Mode&unix.S_IFMT != unix.S_IFREG || r.st.Size > int64(len(buf)) {
		return false
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
