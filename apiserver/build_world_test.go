package apiserver

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

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

// buildWorld is an in-process registry holding a busybox base image, for builds
// through the API. Tests using it need root (chroot isolation) and a static busybox.
type buildWorld struct {
	registry string // host:port
	busybox  string // reference of the base image
}

func newBuildWorld(t *testing.T, wrap func(http.Handler) http.Handler) *buildWorld {
	t.Helper()
	if testing.Short() {
		t.Skip("builds do not run with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot builds need root")
	}
	host, ref := testworld.BusyboxRegistry(t, wrap, testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n"})
	return &buildWorld{registry: host, busybox: ref}
}

// requireBasicAuth makes a registry answer 401 to requests without kiln:secret.
func requireBasicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "kiln" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// buildServer is a kiln API server with a store and chroot builds.
type buildServer struct {
	*httptest.Server
	store    *store.Store
	stateDir string
}

func newBuildServer(t *testing.T, cfg BuildConfig) *buildServer {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workspace.StateDir == "" {
		cfg.Workspace = builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	ts := httptest.NewServer(New(WithLogger(l), WithStore(st), WithBuildConfig(cfg)).Handler())
	t.Cleanup(ts.Close)
	return &buildServer{Server: ts, store: st, stateDir: cfg.Workspace.StateDir}
}

// contextTar is a build context: name → content, in order of the map's sorted keys.
func contextTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		data := files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	return buf.Bytes()
}

// buildResponse is a POST /build answer: its status and, for a stream, its messages.
type buildResponse struct {
	status   int
	body     string
	messages []message
}

// text is the concatenation of the stream and status text, as the CLI prints it.
func (b *buildResponse) text() string {
	var sb strings.Builder
	for _, m := range b.messages {
		sb.WriteString(m.Stream)
		if m.Status != "" {
			sb.WriteString(m.Status + "\n")
		}
	}
	return sb.String()
}

// last is the final message.
func (b *buildResponse) last() message {
	if len(b.messages) == 0 {
		return message{}
	}
	return b.messages[len(b.messages)-1]
}

func postBuild(t *testing.T, url, query string, body []byte, header http.Header) *buildResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1.41/build?"+query, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := &buildResponse{status: resp.StatusCode, body: string(raw)}
	if resp.StatusCode == http.StatusOK {
		br.messages = decodeMessages(t, raw)
	}
	return br
}

// decodeMessages splits a stream, checking dockerd's "\r\n" framing on the way.
func decodeMessages(t *testing.T, raw []byte) []message {
	t.Helper()
	var msgs []message
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("stream not ended by \\r\\n: %q", raw)
	}
	for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		if !bytes.HasSuffix(line, []byte("\r")) {
			t.Fatalf("message not ended by \\r\\n: %q", line)
		}
		var m message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}
