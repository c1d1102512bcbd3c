package buildkitapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/tonistiigi/fsutil"
)

// gatewaySolve builds dir's Dockerfile the way buildx does: Control.Solve without a
// frontend, and a gateway client that solves dockerfile.v0 through LLBBridge and
// returns the result.
func gatewaySolve(t *testing.T, c *bkclient.Client, dir string, exports ...bkclient.ExportEntry) (*bkclient.SolveResponse, []*bkclient.SolveStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ch, statuses := collectStatus()
	resp, err := c.Build(ctx, bkclient.SolveOpt{
		LocalMounts: map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports:     exports,
	}, "", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		return gc.Solve(ctx, gateway.SolveRequest{Frontend: "dockerfile.v0", FrontendOpt: map[string]string{"build-arg:V": "7"}})
	}, ch)
	return resp, statuses(), err
}

func TestGatewaySolve(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nARG V\nRUN echo $V > /v\n"})
	ctx := context.Background()
	c := ts.client(t, ctx)
	resp, statuses, err := gatewaySolve(t, c, dir, bkclient.ExportEntry{Type: "moby", Attrs: map[string]string{"name": "kiln-test/gw:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.ExporterResponse["containerimage.config.digest"], "sha256:") {
		t.Errorf("exporter response %v", resp.ExporterResponse)
	}
	if _, _, err := ts.store.Resolve("kiln-test/gw:1"); err != nil {
		t.Errorf("the image is not in the store: %v", err)
	}
	if !vertexNames(statuses)["[2/2] RUN echo $V > /v"] {
		t.Errorf("no RUN vertex in %v", vertexNames(statuses))
	}
}

// TestGRPCUpgrade reaches the API through POST /grpc on an HTTP server, as buildx's
// docker driver does: 101 to h2c, then gRPC on the hijacked connection.
func TestGRPCUpgrade(t *testing.T) {
	ts := newTestServer(t)
	hs := httptest.NewServer(ts.Handler())
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		req := "POST /grpc HTTP/1.1\r\nHost: kiln\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
		if _, err := conn.Write([]byte(req)); err != nil {
			conn.Close()
			return nil, err
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			conn.Close()
			return nil, fmt.Errorf("POST /grpc: %s", resp.Status)
		}
		// The server's HTTP/2 settings may already sit in br.
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	ctx := context.Background()
	c, err := bkclient.New(ctx, "tcp://kiln", bkclient.WithContextDialer(dial))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || len(ws[0].Platforms) != 1 {
		t.Fatalf("workers = %+v", ws)
	}
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nARG V\nRUN echo $V > /v\n"})
	if _, _, err := gatewaySolve(t, c, dir); err != nil {
		t.Fatal(err)
	}
}

// TestUnknownFrontendRefused: an external frontend (# syntax=other/frontend) gets a
// clear error, never a hang.
func TestUnknownFrontendRefused(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM scratch\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := ts.client(t, ctx)
	fs, _ := fsutil.NewFS(dir)
	_, err := c.Solve(ctx, nil, bkclient.SolveOpt{
		Frontend:      "gateway.v0",
		FrontendAttrs: map[string]string{"source": "example.com/my/frontend:1"},
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "external frontend") || !strings.Contains(err.Error(), "example.com/my/frontend:1") {
		t.Fatalf("err = %v", err)
	}
}

// TestBuiltinSyntaxWarnsOnce: a gateway.v0 solve for Docker's own frontend with a
// Dockerfile naming it too is built by kiln with one warning saying so, and the
// Dockerfile's build checks arrive as BuildKit's warnings.
func TestBuiltinSyntaxWarnsOnce(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "# syntax=docker/dockerfile:1\nFROM " + ts.busybox + " as base\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := ts.client(t, ctx)
	fs, _ := fsutil.NewFS(dir)
	ch, statuses := collectStatus()
	_, err := c.Solve(ctx, nil, bkclient.SolveOpt{
		Frontend:      "gateway.v0",
		FrontendAttrs: map[string]string{"source": "docker/dockerfile:1"},
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
	}, ch)
	if err != nil {
		t.Fatal(err)
	}
	var syntax, check int
	for _, s := range statuses() {
		for _, w := range s.Warnings {
			short := string(w.Short)
			if strings.Contains(short, "# syntax=docker/dockerfile:1") {
				syntax++
			}
			if strings.Contains(short, "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)") {
				check++
			}
		}
	}
	if syntax != 1 || check != 1 {
		t.Errorf("%d syntax and %d FromAsCasing warnings, want one each", syntax, check)
	}
}
