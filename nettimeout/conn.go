package nettimeout

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn wraps c so that a read or write waiting with no byte moved on c, in either
// direction, for the stall limit fails with an *Error naming host. Deadlines its
// user sets (http.Transport and crypto/tls set them to interrupt a wait) still work.
func (l Limits) Conn(c net.Conn, host string) net.Conn {
	sc := &stallConn{Conn: c, host: host, stall: l.StallTimeout()}
	sc.last.Store(time.Now().UnixNano())
	return sc
}

// stallConn is a connection with a stall limit. A wait's stall clock starts at the
// later of the wait's start and the last byte moved: a reader paused by its caller
// (busy writing to disk) is not stalled, and a writer streaming a large upload keeps
// the reader waiting for the response alive.
type stallConn struct {
	net.Conn
	host  string
	stall time.Duration
	last  atomic.Int64 // UnixNano of the last byte read or written

	mu        sync.Mutex
	userRead  time.Time // deadlines set by the connection's user
	userWrite time.Time
	ownRead   time.Time // the stall deadlines of the waits under way
	ownWrite  time.Time
}

func (c *stallConn) Read(p []byte) (int, error) {
	return c.wait(p, c.Conn.Read, true)
}

func (c *stallConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := c.wait(p[written:], c.Conn.Write, false)
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// wait runs one read or write under the stall limit. A wait that moved some bytes
// before its deadline returns them with no error (a write goes on with the rest).
func (c *stallConn) wait(p []byte, op func([]byte) (int, error), read bool) (int, error) {
	start := time.Now()
	defer c.setOwn(read, time.Time{})
	for {
		c.setOwn(read, c.since(start).Add(c.stall))
		n, err := op(p)
		if n > 0 {
			c.last.Store(time.Now().UnixNano())
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if user := c.userDeadline(read); !user.IsZero() && !time.Now().Before(user) {
			return n, err // the user's own deadline
		}
		if n > 0 {
			return n, nil
		}
		if time.Since(c.since(start)) < c.stall {
			continue // the other direction moved, or a deadline the user moved woke us
		}
		return 0, &Error{Host: c.host, Limit: c.stall}
	}
}

// since is when the stall clock of a wait that started at start began: the later of
// start and the last byte moved.
func (c *stallConn) since(start time.Time) time.Time {
	if last := time.Unix(0, c.last.Load()); last.After(start) {
		return last
	}
	return start
}

// setOwn sets the stall deadline of the wait under way and applies the earlier of
// it and the user's deadline to the connection.
func (c *stallConn) setOwn(read bool, own time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if read {
		c.ownRead = own
		_ = c.Conn.SetReadDeadline(earliest(own, c.userRead))
	} else {
		c.ownWrite = own
		_ = c.Conn.SetWriteDeadline(earliest(own, c.userWrite))
	}
}

func (c *stallConn) userDeadline(read bool) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if read {
		return c.userRead
	}
	return c.userWrite
}

// SetDeadline sets the user's read and write deadlines.
func (c *stallConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the user's read deadline; a wait under way sees it at once.
func (c *stallConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.userRead = t
	return c.Conn.SetReadDeadline(earliest(c.ownRead, t))
}

// SetWriteDeadline sets the user's write deadline; a wait under way sees it at once.
func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.userWrite = t
	return c.Conn.SetWriteDeadline(earliest(c.ownWrite, t))
}

// earliest is the earlier of two deadlines, the zero time meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
