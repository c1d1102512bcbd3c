package nettimeout_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/test/testworld"
)

// slack is how much later than its limit a wait may end on a loaded test machine.
const slack = 3 * time.Second

// wantLimit checks that err is the limit that fired, naming host and setting, and
// that it fired within slack of limit after start.
func wantLimit(t *testing.T, err error, start time.Time, host string, connect bool, limit time.Duration) {
	t.Helper()
	var fired *nettimeout.Error
	if !errors.As(err, &fired) || fired.Connect != connect {
		t.Fatalf("error = %v, want a nettimeout.Error (connect %v)", err, connect)
	}
	want := host + ": no data for " + limit.String() + " (--net-stall-timeout)"
	if connect {
		want = "connect to " + host + ": no connection within " + limit.String() + " (--net-connect-timeout)"
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if took := time.Since(start); took < limit || took > limit+slack {
		t.Errorf("the limit fired after %s, want about %s", took, limit)
	}
}

func TestDialConnectTimeout(t *testing.T) {
	t.Parallel()
	addr := testworld.FullBacklog(t)
	l := nettimeout.Limits{Connect: 500 * time.Millisecond}
	start := time.Now()
	c, err := l.DialContext(context.Background(), "tcp", addr)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded")
	}
	wantLimit(t, err, start, addr, true, l.Connect)
}

// TestDialCancelled: the caller's cancellation is not reported as the limit.
func TestDialCancelled(t *testing.T) {
	t.Parallel()
	addr := testworld.FullBacklog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := nettimeout.Limits{Connect: time.Minute}.DialContext(ctx, "tcp", addr)
	var fired *nettimeout.Error
	if err == nil || errors.As(err, &fired) {
		t.Fatalf("error = %v, want the context's", err)
	}
}

func TestStallRead(t *testing.T) {
	t.Parallel()
	addr := testworld.StallTCP(t)
	l := nettimeout.Limits{Stall: 400 * time.Millisecond}
	c, err := l.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	wantLimit(t, err, start, addr, false, l.Stall)
}

// peer is a loopback server running fn on its one connection.
func peer(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fn(c)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestStallProgress: bytes moving in either direction keep a wait alive, and a
// reader its caller paused is not stalled for the pause.
func TestStallProgress(t *testing.T) {
	t.Parallel()
	const stall = 400 * time.Millisecond
	l := nettimeout.Limits{Stall: stall}

	t.Run("writes keep a read alive", func(t *testing.T) {
		t.Parallel()
		addr := peer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
		c, err := l.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			for end := time.Now().Add(4 * stall); time.Now().Before(end); time.Sleep(stall / 8) {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		start := time.Now()
		_, err = c.Read(make([]byte, 1))
		if took := time.Since(start); took < 4*stall {
			t.Errorf("the read failed after %s while writes moved: %v", took, err)
		}
		var fired *nettimeout.Error
		if !errors.As(err, &fired) {
			t.Errorf("error = %v, want the stall limit once the writes stopped", err)
		}
	})

	t.Run("a paused reader", func(t *testing.T) {
		t.Parallel()
		addr := peer(t, func(c net.Conn) {
			_, _ = c.Write([]byte("a"))
			time.Sleep(stall * 3 / 2)
			_, _ = c.Write([]byte("b"))
			_, _ = io.Copy(io.Discard, c)
		})
		c, err := l.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(stall * 5 / 4) // the caller is busy; nothing is waiting
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'b' {
			t.Fatalf("second read = %q, %v; want b", buf, err)
		}
	})

	t.Run("a write nobody reads", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		addr := peer(t, func(c net.Conn) { <-release }) // accepts, never reads
		defer close(release)
		c, err := l.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		start := time.Now()
		for i := 0; i < 1024; i++ { // until the socket buffers are full
			if _, err = c.Write(buf); err != nil {
				break
			}
		}
		var fired *nettimeout.Error
		if !errors.As(err, &fired) || time.Since(start) > stall+slack {
			t.Errorf("write = %v after %s, want the stall limit", err, time.Since(start))
		}
	})

	t.Run("the user's deadline", func(t *testing.T) {
		t.Parallel()
		addr := testworld.StallTCP(t)
		c, err := nettimeout.Limits{Stall: time.Minute}.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		start := time.Now()
		_, err = c.Read(make([]byte, 1))
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > slack {
			t.Errorf("read = %v after %s, want the deadline's error at once", err, time.Since(start))
		}
	})
}

// TestClientStall: an HTTP response whose headers came and whose body stopped.
func TestClientStall(t *testing.T) {
	t.Parallel()
	url := testworld.StallHTTP(t, nil, nil)
	l := nettimeout.Limits{Stall: 500 * time.Millisecond}
	resp, err := l.Client().Get(url + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	_, err = io.Copy(io.Discard, resp.Body)
	wantLimit(t, err, start, strings.TrimPrefix(url, "http://"), false, l.Stall)
}

func TestWatchdog(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	ctx, w := nettimeout.Limits{Stall: stall}.Watch(context.Background(), "git.example:9418")
	defer w.Stop()
	for end := time.Now().Add(3 * stall); time.Now().Before(end); time.Sleep(stall / 6) {
		_, _ = w.Write([]byte("Counting objects"))
		if ctx.Err() != nil {
			t.Fatalf("cancelled while progressing: %v", context.Cause(ctx))
		}
	}
	start := time.Now()
	<-ctx.Done()
	err := context.Cause(ctx)
	if want := "git.example:9418: no data for 300ms (--net-stall-timeout)"; err == nil || err.Error() != want {
		t.Errorf("cause = %v, want %q", err, want)
	}
	if took := time.Since(start); took > stall+slack {
		t.Errorf("the watchdog fired %s after the last progress, want about %s", took, stall)
	}
}
