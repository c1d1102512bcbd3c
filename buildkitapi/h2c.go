package buildkitapi

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// serveGRPCUpgrade answers POST /grpc as dockerd does: 101 Switching Protocols to h2c,
// then the hijacked connection carries BuildKit's gRPC API with kiln as the HTTP/2
// server. buildx first opens one such connection as a probe and closes it at once.
func (s *Server) serveGRPCUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "h2c" {
		http.Error(w, "POST /grpc needs Upgrade: h2c (BuildKit's gRPC API)", http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "this connection cannot be upgraded", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		s.cfg.Log.WithError(err).Warn("buildkit: hijacking /grpc")
		return
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
	if _, err := rw.WriteString(resp); err != nil {
		conn.Close()
		return
	}
	if err := rw.Flush(); err != nil {
		conn.Close()
		return
	}
	c := &bufferedConn{Conn: conn, r: rw.Reader}
	if !s.track(c) {
		c.Close()
		return
	}
	defer s.untrack(c)
	// gRPC's own HTTP/2 server takes the connection, as if a listener had accepted
	// it; the handler returns when the connection ends.
	l := newConnListener(c)
	_ = s.grpc.Serve(l)
	<-l.done
}

// connListener hands one connection to a server's Serve, then waits: it closes when
// the connection does, which ends that Serve.
type connListener struct {
	conns chan net.Conn
	addr  net.Addr
	once  sync.Once
	done  chan struct{}
}

func newConnListener(c net.Conn) *connListener {
	l := &connListener{conns: make(chan net.Conn, 1), addr: c.LocalAddr(), done: make(chan struct{})}
	l.conns <- &closeNotifyConn{Conn: c, onClose: l.closeOnce}
	return l
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) closeOnce() { l.once.Do(func() { close(l.done) }) }

func (l *connListener) Close() error {
	l.closeOnce()
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// closeNotifyConn tells its listener when the server closes it.
type closeNotifyConn struct {
	net.Conn
	onClose func()
}

func (c *closeNotifyConn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}

// track remembers an upgraded connection for Close; false once the server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// bufferedConn reads first what the HTTP server had already buffered when the
// connection was hijacked: a client may send the HTTP/2 preface right behind the
// upgrade request, before it has seen the 101.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}
