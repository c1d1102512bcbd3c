package buildkitapi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// fuzzServer is a Server behind an HTTP server, without a registry: what fuzzing
// feeds it must fail before any build runs, or fail the build.
func fuzzServer(t testing.TB) (*Server, string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "builds")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	lg := logrus.New()
	lg.SetLevel(logrus.PanicLevel)
	s, err := New(Config{Workspace: builder.Workspace{Isolation: isolation.Chroot, StateDir: state}, Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { s.Close(); hs.Close() })
	return s, strings.TrimPrefix(hs.URL, "http://")
}

// upgrade opens POST path with an h2c upgrade and returns the raw connection.
func upgrade(addr, path string) (net.Conn, *bufio.Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "POST " + path + " HTTP/1.1\r\nHost: kiln\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" +
		"X-Docker-Expose-Session-Uuid: fuzz\r\nX-Docker-Expose-Session-Name: fuzz\r\nX-Docker-Expose-Session-Sharedkey: fuzz\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	resp.Body.Close()
	return conn, br, nil
}

// stillServes checks that a well-formed client still gets its answer.
func stillServes(t *testing.T, addr string) {
	t.Helper()
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		conn, br, err := upgrade(addr, "/grpc")
		if err != nil {
			return nil, err
		}
		_ = conn.SetDeadline(time.Time{})
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, "tcp://kiln", bkclient.WithContextDialer(dial))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListWorkers(ctx); err != nil {
		t.Fatalf("the server stopped answering: %v", err)
	}
}

// FuzzUpgradedConnection writes arbitrary bytes on upgraded /grpc and /session
// connections, behind a valid HTTP/2 preface or not: the connection may fail, the
// server must keep serving.
func FuzzUpgradedConnection(f *testing.F) {
	preface := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	f.Add(false, []byte(preface))
	f.Add(false, []byte(preface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	f.Add(true, []byte(preface+"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x7f\xff\xff\xff"))
	f.Add(false, []byte(preface+"\x00\x00\x05\x01\x04\x00\x00\x00\x01\x82\x86\x84\x41\x8a"))
	f.Add(true, []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add(false, []byte(preface+"\x00\xff\xff\x00\x00\x00\x00\x00\x01"))
	_, addr := fuzzServer(f)
	f.Fuzz(func(t *testing.T, session bool, data []byte) {
		path := "/grpc"
		if session {
			path = "/session"
		}
		conn, _, err := upgrade(addr, path)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		_, _ = conn.Write(data)
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var buf [512]byte
		_, _ = conn.Read(buf[:])
		conn.Close()
		stillServes(t, addr)
	})
}

// FuzzSolveRequest hands Solve arbitrary requests (decoded from arbitrary bytes):
// each ends with an error or a result within its deadline, never a panic or a hang.
func FuzzSolveRequest(f *testing.F) {
	for _, r := range []*controlapi.SolveRequest{
		{Ref: "r1"},
		{Ref: "r2", Frontend: "dockerfile.v0"},
		{Ref: "r3", Frontend: "gateway.v0", FrontendAttrs: map[string]string{"source": "docker/dockerfile:1"}},
		{Ref: "r4", Frontend: "dockerfile.v0", Session: "nosuch", FrontendAttrs: map[string]string{"platform": "windows/arm64", "filename": "../../etc/passwd"}},
		{Ref: "r5", Frontend: "dockerfile.v0", FrontendAttrs: map[string]string{"add-hosts": "a=1.2.3.4", "context:x": "y"}},
		{Ref: "r6", ExporterDeprecated: "local", Frontend: "nosuch"},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s, _ := fuzzServer(f)
	c := &control{s: s}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req controlapi.SolveRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := c.Solve(ctx, &req)
			if err == nil && req.Frontend != "" && resp == nil {
				t.Errorf("Solve(%v): no error and no response", &req)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Solve(%v) did not end with its context", &req)
		}
	})
}

// FuzzFrontendOptions: any attribute map is read or refused with a message.
func FuzzFrontendOptions(f *testing.F) {
	f.Add("platform", "linux/amd64", "build-arg:A", "1")
	f.Add("add-hosts", "x=1.1.1.1", "no-cache", "")
	f.Add("force-network-mode", "bridge", "image-resolve-mode", "weird")
	f.Add("source", "docker/dockerfile:1.7", "call", "outline")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		o, err := parseFrontendOptions(map[string]string{k1: v1, k2: v2})
		if err == nil && o == nil {
			t.Fatal("no options and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an empty error")
		}
	})
}
