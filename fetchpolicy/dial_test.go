package fetchpolicy_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/fetchpolicy"
	"github.com/kiln-build/kiln/nettimeout"
)

func policy(t *testing.T, allow ...string) fetchpolicy.Policy {
	t.Helper()
	p, err := fetchpolicy.New(fetchpolicy.Strict, allow)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDialChecksTheResolvedAddress dials a host name that resolves to loopback: the
// name itself says nothing, the address it resolves to is what the policy refuses.
func TestDialChecksTheResolvedAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr := net.JoinHostPort("localhost", port)
	cases := []struct {
		name    string
		allow   []string
		refused bool
	}{
		{"default", nil, true},
		{"other address allowed", []string{"10.0.0.0/8"}, true},
		{"address allowed", []string{"127.0.0.1"}, false},
		{"range allowed", []string{"127.0.0.0/8"}, false},
		{"name allowed", []string{"localhost"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l := nettimeout.Limits{}.Guarded(policy(t, c.allow...))
			conn, err := l.DialContext(ctx, "tcp", addr)
			if !c.refused {
				if err != nil {
					t.Fatalf("dial %s: %v", addr, err)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("dial %s connected, want it refused", addr)
			}
			var r *fetchpolicy.Refusal
			if !errors.As(err, &r) || r.Rule != "a loopback address" || !strings.Contains(err.Error(), "localhost (") {
				t.Fatalf("dial %s: %v, want a loopback refusal naming localhost", addr, err)
			}
		})
	}
}

// TestRedirectIsChecked allows only 127.0.0.2: a redirect from it to 127.0.0.1 is
// refused when the client dials the new address, as a redirect to cloud metadata
// would be.
func TestRedirectIsChecked(t *testing.T) {
	t.Parallel()
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("secret"))
	}))
	defer inner.Close()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not on this machine's loopback: %v", err)
	}
	outer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/plain" {
			_, _ = w.Write([]byte("fine"))
			return
		}
		http.Redirect(w, r, inner.URL+"/latest", http.StatusFound)
	}))
	outer.Listener.Close()
	outer.Listener = ln
	outer.Start()
	defer outer.Close()

	client := nettimeout.Limits{}.Guarded(policy(t, "127.0.0.2")).Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	get := func(url string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return b.String(), nil
	}
	if body, err := get(outer.URL + "/plain"); err != nil || body != "fine" {
		t.Fatalf("the allowed server: %q, %v", body, err)
	}
	body, err := get(outer.URL + "/redirect")
	var r *fetchpolicy.Refusal
	if !errors.As(err, &r) || r.Addr.String() != "127.0.0.1" {
		t.Fatalf("redirect to %s: body %q, err %v; want a refusal of 127.0.0.1", inner.URL, body, err)
	}
}
