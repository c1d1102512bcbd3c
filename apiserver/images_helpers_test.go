package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/store"
)

// imageTestServer is a kiln server with a store of its own, served over real HTTP.
type imageTestServer struct {
	*httptest.Server
	store *store.Store
	srv   *Server
}

func newImageTestServer(t *testing.T, opts ...Option) *imageTestServer {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	srv := New(append([]Option{WithLogger(logger), WithVersion("test"), WithStore(st)}, opts...)...)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &imageTestServer{Server: ts, store: st, srv: srv}
}

// call sends one request and returns the response with its body read.
func (ts *imageTestServer) call(t *testing.T, method, path string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, raw
}

// put stores img under tags.
func (ts *imageTestServer) put(t *testing.T, img v1.Image, tags ...string) v1.Hash {
	t.Helper()
	var ts2 []name.Tag
	for _, s := range tags {
		tag, err := store.ParseTag(s)
		if err != nil {
			t.Fatal(err)
		}
		ts2 = append(ts2, tag)
	}
	id, err := ts.store.Put(context.Background(), img, ts2...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// apiImage is a random two-layer linux/amd64 image with a config like a built one.
func apiImage(t *testing.T, created time.Time, labels map[string]string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Labels = labels
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"cat", "/hello.txt"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// streamMessages decodes a Docker JSON message stream, checking dockerd's "\r\n"
// framing.
func streamMessages(t *testing.T, raw []byte) []message {
	t.Helper()
	var out []message
	for _, line := range bytes.SplitAfter(raw, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			t.Fatalf("stream message not ended by \\r\\n: %q", line)
		}
		var m message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("stream message %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// streamError returns the stream's error message, "" when it has none.
func streamError(msgs []message) string {
	for _, m := range msgs {
		if m.Error != "" {
			return m.Error
		}
	}
	return ""
}

// newTestRegistry serves an in-process registry on 127.0.0.1, optionally behind HTTP
// basic auth as an htpasswd registry does, and returns its host:port.
func newTestRegistry(t *testing.T, user, password string) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if user != "" {
		h = basicAuthOnly(h, user, password)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// basicAuthOnly answers 401 with a Basic challenge unless the request carries the
// right credentials.
func basicAuthOnly(h http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// registryAuth encodes an X-Registry-Auth header as the docker CLI does.
func registryAuth(t *testing.T, v any) http.Header {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"X-Registry-Auth": {base64.URLEncoding.EncodeToString(raw)}}
}
