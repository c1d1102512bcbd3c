package buildkitapi

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
	"github.com/tonistiigi/fsutil"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/store"
	"github.com/kiln-build/kiln/test/testworld"
)

// TestMain lets the chroot runner re-execute the test binary as a RUN's child.
func TestMain(m *testing.M) {
	isolation.Init()
	os.Exit(m.Run())
}

// testServer is a Server on a unix socket with a store and a registry holding busybox.
type testServer struct {
	*Server
	addr    string
	store   *store.Store
	busybox string
}

func newTestServer(t *testing.T, opts ...func(*Config)) *testServer {
	t.Helper()
	if testing.Short() {
		t.Skip("builds do not run with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot builds need root")
	}
	_, ref := testworld.BusyboxRegistry(t, nil, testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n"})
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	lg := logrus.New()
	lg.SetLevel(logrus.WarnLevel)
	state := filepath.Join(dir, "builds")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	steps, err := builder.NewLocalCache(filepath.Join(dir, "cache")) // as kiln serve has one
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Workspace: builder.Workspace{Isolation: isolation.Chroot, StateDir: state, Cache: steps,
			MountCacheDir: filepath.Join(dir, "cache", "mounts")}, // as kiln serve has
		Store: st,
		Log:   lg,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "bk.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, addr: "unix://" + sock, store: st, busybox: ref}
}

// solve builds dir's Dockerfile through BuildKit's own client, as buildctl does.
func (ts *testServer) solve(t *testing.T, dir string, attrs map[string]string, exports ...bkclient.ExportEntry) (*bkclient.SolveResponse, []*bkclient.SolveStatus, error) {
	t.Helper()
	return ts.solveShared(t, "", dir, attrs, exports...)
}

// solveShared is solve with a session shared key, which names the client's cached
// context.
func (ts *testServer) solveShared(t *testing.T, sharedKey, dir string, attrs map[string]string, exports ...bkclient.ExportEntry) (*bkclient.SolveResponse, []*bkclient.SolveStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := ts.client(t, ctx)
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ch, statuses := collectStatus()
	resp, err := c.Solve(ctx, nil, bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports:       exports,
		SharedKey:     sharedKey,
	}, ch)
	return resp, statuses(), err
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSolveDockerfileToStore(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + ts.busybox + "\nARG V\nCOPY a.txt /a.txt\nRUN echo \"$V\" > /v.txt\nLABEL x=1\n",
		"a.txt":      "hello\n",
	})
	resp, statuses, err := ts.solve(t, dir, map[string]string{"build-arg:V": "42", "label:l": "y"},
		bkclient.ExportEntry{Type: "image", Attrs: map[string]string{"name": "kiln-test/bk:1"}})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.ExporterResponse["containerimage.config.digest"]
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("no image ID in %v", resp.ExporterResponse)
	}
	names := vertexNames(statuses)
	for _, want := range []string{"[internal] load build definition from Dockerfile", "[internal] load build context",
		"[1/3] FROM " + ts.busybox, "[2/3] COPY a.txt /a.txt", "[3/3] RUN echo \"$V\" > /v.txt", "exporting to image"} {
		if !names[want] {
			t.Errorf("no vertex %q in %v", want, names)
		}
	}
	img, _, err := ts.store.Resolve("kiln-test/bk:1")
	if err != nil {
		t.Fatalf("the image is not in the store: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Labels["x"] != "1" || cf.Config.Labels["l"] != "y" {
		t.Errorf("labels = %v", cf.Config.Labels)
	}
}

// vertexNames are the names of the completed vertexes of a solve.
func vertexNames(statuses []*bkclient.SolveStatus) map[string]bool {
	names := map[string]bool{}
	for _, s := range statuses {
		for _, v := range s.Vertexes {
			if v.Completed != nil {
				names[v.Name] = true
			}
		}
	}
	return names
}

// client is a BuildKit client of the test server, closed when the test ends.
func (ts *testServer) client(t *testing.T, ctx context.Context) *bkclient.Client {
	t.Helper()
	c, err := bkclient.New(ctx, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// collectStatus returns a channel for a solve's status and the function that returns
// everything sent on it once the client has closed it.
func collectStatus() (chan *bkclient.SolveStatus, func() []*bkclient.SolveStatus) {
	ch := make(chan *bkclient.SolveStatus)
	var statuses []*bkclient.SolveStatus
	got := make(chan struct{})
	go func() {
		for s := range ch {
			statuses = append(statuses, s)
		}
		close(got)
	}()
	return ch, func() []*bkclient.SolveStatus {
		<-got
		return statuses
	}
}
