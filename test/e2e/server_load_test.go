package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/test/testworld"
)

// httpClient talks to the server's unix socket.
func (s *server) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.socket)
	}}}
}

// tarContext packs files into a build context archive.
func tarContext(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// buildResult is what POST /build answered.
type buildResult struct {
	status int
	body   string // the error message, or the whole stream
	err    string // the stream's final error, if any
}

// postBuild sends one build over the Engine API; onLine sees every stream line.
func (s *server) postBuild(ctx context.Context, c *http.Client, tag string, tarball []byte, onLine func(string)) (buildResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://kiln/build?t="+url.QueryEscape(tag), bytes.NewReader(tarball))
	if err != nil {
		return buildResult{}, err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.Do(req)
	if err != nil {
		return buildResult{}, err
	}
	defer resp.Body.Close()
	r := buildResult{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		r.body = string(data)
		return r, nil
	}
	var all strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		_ = json.Unmarshal(sc.Bytes(), &m)
		all.WriteString(m.Stream)
		if m.Error != "" {
			r.err = m.Error
		}
		if onLine != nil {
			onLine(m.Stream)
		}
	}
	r.body = all.String()
	return r, sc.Err()
}

// imageFile reads path from the top layer of tag, saved through GET /images/get.
func (s *server) imageFile(t *testing.T, c *http.Client, tag, path string) string {
	t.Helper()
	resp, err := c.Get("http://kiln/images/get?names=" + url.QueryEscape(tag))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("saving %s: %d %v %.200s", tag, resp.StatusCode, err, data)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, &ref)
	if err != nil {
		t.Fatalf("reading the saved %s: %v", tag, err)
	}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no %s: %v", tag, path, err)
		}
		if strings.TrimPrefix(h.Name, "/") == strings.TrimPrefix(path, "/") {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

// TestServerLoad runs 20 clients of 5 builds each against one server with 2 build
// slots and a queue of 6: every build the server accepts completes with its own
// image, a refused one is told why with a 503 and tried again, none is lost or
// duplicated, and the server's peak memory is logged. Then clients that leave while
// queued free their places.
func TestServerLoad(t *testing.T) {
	reg := testworld.Registry(t)
	const clients, builds, queued = 20, 5, 6
	s := startServer(t, "--max-concurrent-builds", "2", "--max-queued-builds", strconv.Itoa(queued))
	c := s.httpClient()
	run := uniqueTag()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var refused, accepted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients*builds)
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range builds {
				id := fmt.Sprintf("client-%d-build-%d", i, j)
				tag := fmt.Sprintf("kiln-e2e/load-%s:%d-%d", run, i, j)
				ctxTar := tarContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo " + id + " > /id\n"})
				for {
					r, err := s.postBuild(ctx, c, tag, ctxTar, nil)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						return
					}
					if r.status == http.StatusServiceUnavailable {
						if !strings.Contains(r.body, "--max-queued-builds") {
							errs <- fmt.Errorf("%s: a 503 that does not say why: %s", id, r.body)
							return
						}
						refused.Add(1)
						time.Sleep(time.Duration(200+i*10) * time.Millisecond)
						continue
					}
					accepted.Add(1)
					if r.status != http.StatusOK || r.err != "" {
						errs <- fmt.Errorf("%s: accepted but failed: %d %s %s", id, r.status, r.err, tail(r.body, 500))
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d builds in %s; %d refusals (503) retried", accepted.Load(), time.Since(start).Round(time.Millisecond), refused.Load())
	if refused.Load() == 0 {
		t.Errorf("no build was refused: the queue of %d was never full", queued)
	}
	if got := accepted.Load(); got != clients*builds {
		t.Errorf("%d builds accepted, want %d (a build was lost or run twice)", got, clients*builds)
	}
	// Every tag exists once, with its own content.
	resp, err := c.Get("http://kiln/images/json")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct{ RepoTags []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := map[string]int{}
	for _, im := range list {
		for _, tag := range im.RepoTags {
			if strings.HasPrefix(tag, "kiln-e2e/load-"+run+":") {
				seen[tag]++
			}
		}
	}
	if len(seen) != clients*builds {
		t.Errorf("%d images tagged, want %d", len(seen), clients*builds)
	}
	for i := range clients {
		j := i % builds // one image per client: enough to catch crossed builds
		tag := fmt.Sprintf("kiln-e2e/load-%s:%d-%d", run, i, j)
		if got, want := s.imageFile(t, c, tag, "id"), fmt.Sprintf("client-%d-build-%d\n", i, j); got != want {
			t.Errorf("%s holds /id %q, want %q", tag, got, want)
		}
	}
	if hwm := vmHWM(t, s.cmd.Process.Pid); hwm > 0 {
		t.Logf("kiln serve peak RSS (VmHWM): %d MiB", hwm>>20)
		if hwm > 2<<30 {
			t.Errorf("kiln serve's peak RSS %d MiB is over 2 GiB", hwm>>20)
		}
	}

	t.Run("queued clients that leave free their places", func(t *testing.T) {
		testQueueCancel(ctx, t, s, c, reg, queued)
	})
}

// testQueueCancel fills both slots and the queue with slow builds, checks that one
// more is refused, disconnects the queued clients and checks that new builds are
// accepted in their places.
func testQueueCancel(ctx context.Context, t *testing.T, s *server, c *http.Client, reg string, queued int) {
	slow := tarContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN sleep 4 # " + uniqueTag() + "\n"})
	var wg sync.WaitGroup
	defer wg.Wait()
	running := make(chan struct{}, 2+queued)
	waiting := make(chan struct{}, 2+queued)
	var cancels []context.CancelFunc
	for i := range 2 + queued {
		cctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		defer cancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			_, _ = s.postBuild(cctx, c, fmt.Sprintf("kiln-e2e/load-slow:%d", i), slow, func(line string) {
				switch {
				case strings.Contains(line, "Waiting for the build slot"):
					once.Do(func() { waiting <- struct{}{} })
				case strings.Contains(line, "Running in"):
					once.Do(func() { running <- struct{}{} })
				}
			})
		}()
		// One at a time, so the first two hold the slots and the rest queue.
		select {
		case <-running:
		case <-waiting:
		case <-time.After(30 * time.Second):
			t.Fatalf("slow build %d neither ran nor queued", i)
		}
	}
	r, err := s.postBuild(ctx, c, "kiln-e2e/load-slow:extra", slow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("a build beyond a full queue: %d %s, want 503", r.status, tail(r.body, 300))
	}
	t.Logf("refused: %s", strings.TrimSpace(r.body))
	for _, cancel := range cancels[2:] { // the queued clients leave
		cancel()
	}
	// Their places are free: as many new builds queue instead of being refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		qctx, qcancel := context.WithCancel(ctx)
		got := make(chan int, 1)
		go func() {
			r, _ := s.postBuild(qctx, c, "kiln-e2e/load-slow:after", slow, func(line string) {
				if strings.Contains(line, "Waiting for the build slot") {
					select {
					case got <- http.StatusOK:
					default:
					}
				}
			})
			select {
			case got <- r.status:
			default:
			}
		}()
		status := <-got
		qcancel()
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("builds are still refused (%d) after the queued clients left", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, cancel := range cancels {
		cancel()
	}
}

// vmHWM returns a process's peak resident set size in bytes, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("reading the server's memory: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
