// Package nettimeout bounds every network wait kiln makes on a client's or a
// user's behalf: a connect timeout for each dial, and a stall timeout that fails a
// connection on which no byte has moved, in either direction, for that long while a
// read or a write is waiting. A stall timeout rather than a deadline, because a
// multi-gigabyte layer may rightly take an hour, while a connection on which nothing
// moves for minutes is dead.
//
// Limits is a value: the front doors (cmd/kiln) build one from flags and pass it to
// every place that dials, builds an http.Transport or runs a fetch it cannot dial for
// itself (go-git's git:// protocol, through a Watchdog).
package nettimeout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"
)

// The defaults suit CI: a registry or git server that accepts no connection in 30s
// is down, and two minutes without a byte is a hung peer, not a slow one.
const (
	DefaultConnect = 30 * time.Second
	DefaultStall   = 120 * time.Second
)

// The names of the settings, as the errors give them, so a user who meets one knows
// what to change. kiln build and kiln serve take the same flags.
const (
	ConnectSetting = "--net-connect-timeout"
	StallSetting   = "--net-stall-timeout"
)

// Limits are the connect and stall timeouts. A zero field means its default, so
// the zero Limits is never unbounded.
type Limits struct {
	// Connect bounds establishing one connection (DNS, TCP handshake).
	Connect time.Duration
	// Stall is how long a connection may wait with no byte read or written.
	Stall time.Duration
	// Guard, when set, vets every connection's resolved address before it is made
	// (a fetch policy against server-side request forgery: fetchpolicy.Policy). It
	// is set only on the limits of fetches made for a client (remote= contexts, ADD
	// URLs, git, buckets), never on the registries' the operator configures.
	Guard Guard
}

// A Guard decides whether a connection may be made. CheckDial is called with the
// address the dial was asked for (host:port) and the one it resolved to (ip:port),
// just before each connection attempt, so a host name that resolves, or is
// rebound, to a refused address is refused too.
type Guard interface {
	CheckDial(address, resolved string) error
}

// Control is a net.Dialer Control func that checks each connection a dial to
// address makes against l's Guard; nil when l has none.
func (l Limits) Control(address string) func(network, resolved string, c syscall.RawConn) error {
	if l.Guard == nil {
		return nil
	}
	return func(_, resolved string, _ syscall.RawConn) error {
		return l.Guard.CheckDial(address, resolved)
	}
}

// Guarded returns l with g as its Guard (nil: none).
func (l Limits) Guarded(g Guard) Limits {
	l.Guard = g
	return l
}

// ConnectTimeout is the connect limit in force.
func (l Limits) ConnectTimeout() time.Duration {
	if l.Connect <= 0 {
		return DefaultConnect
	}
	return l.Connect
}

// StallTimeout is the stall limit in force.
func (l Limits) StallTimeout() time.Duration {
	if l.Stall <= 0 {
		return DefaultStall
	}
	return l.Stall
}

// Error is a limit that fired: Connect says which one. It names the host, the
// limit and the setting that changes it.
type Error struct {
	// Host is the host:port (or host) the wait was for.
	Host string
	// Connect is true for the connect timeout, false for the stall timeout.
	Connect bool
	// Limit is the duration that passed.
	Limit time.Duration
}

func (e *Error) Error() string {
	if e.Connect {
		return fmt.Sprintf("connect to %s: no connection within %s (%s)", e.Host, e.Limit, ConnectSetting)
	}
	return fmt.Sprintf("%s: no data for %s (%s)", e.Host, e.Limit, StallSetting)
}

// Timeout reports true: the error is a timeout, for callers that ask net.Error.
func (e *Error) Timeout() bool { return true }

// DialContext dials address within the connect limit and returns a connection
// that enforces the stall limit. ctx cancels the dial; an established connection is
// closed by its owner (http.Transport closes it when a request's context ends).
func (l Limits) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	limit := l.ConnectTimeout()
	ours := time.Now().Add(limit)
	d := net.Dialer{KeepAlive: 30 * time.Second, Deadline: ours}
	d.Control = l.Control(address)
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		// The dial's deadline is the earlier of ours and ctx's: a timeout is ours
		// unless ctx's came first (the caller's limit, reported as the caller's).
		callers, ok := ctx.Deadline()
		var ne net.Error
		if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() && (!ok || callers.After(ours)) {
			return nil, &Error{Host: address, Connect: true, Limit: limit}
		}
		return nil, err
	}
	return l.Conn(c, address), nil
}

// Transport returns a copy of base (nil: http.DefaultTransport) that dials with
// DialContext, so every connection it makes is held to both limits. Its TLS
// handshake is held to the connect limit as well.
func (l Limits) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	l.Apply(t)
	return t
}

// Apply makes t dial with DialContext and holds its TLS handshake to the connect
// limit, for a transport an SDK builds and lets its caller adjust.
func (l Limits) Apply(t *http.Transport) {
	t.DialContext = l.DialContext
	t.DialTLSContext = nil
	t.TLSHandshakeTimeout = l.ConnectTimeout()
}

// Client returns an http.Client whose transport is Transport(nil). It has no
// overall timeout: a big download may take as long as it keeps moving.
func (l Limits) Client() *http.Client {
	return &http.Client{Transport: l.Transport(nil)}
}
