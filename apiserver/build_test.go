package apiserver

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

var hexID = regexp.MustCompile(`[0-9a-f]{64}|[0-9a-f]{12}`)

// shape renders messages as lines with IDs replaced, for comparison with dockerd's.
func shape(msgs []message) []string {
	var out []string
	for _, m := range msgs {
		raw, _ := json.Marshal(m)
		out = append(out, hexID.ReplaceAllString(string(raw), "<id>"))
	}
	return out
}

// TestBuildStream checks the byte shape of a successful build against dockerd's
// classic builder (captures build-basic, build-misc-flags-ok, build-target).
func TestBuildStream(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	df := "FROM " + w.busybox + " AS base\nRUN echo base > /base.txt\nFROM base\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\nCMD [\"cat\",\"/hello.txt\"]\n"
	body := contextTar(t, map[string]string{"Dockerfile": df, "hello.txt": "hello\n"})
	q := "buildargs=" + urlJSON(map[string]string{"UNUSED": "1"}) + "&dockerfile=Dockerfile&t=app&t=app:v2&t=" + w.registry + "/app:1&version=1"
	resp := postBuild(t, ts.URL, q, body, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.status, resp.body)
	}
	want := []string{
		`{"stream":"Step 1/6 : FROM ` + w.busybox + ` AS base"}`,
		`{"stream":"\n"}`,
		`{"stream":"Retrieving image ` + w.busybox + `\n"}`,
		`{"stream":" ---\u003e <id>\n"}`,
		`{"stream":"Step 2/6 : RUN echo base \u003e /base.txt"}`,
		`{"stream":"\n"}`,
		`{"stream":" ---\u003e Running in <id>\n"}`,
		`{"stream":"Removing intermediate container <id>\n"}`,
		`{"stream":" ---\u003e <id>\n"}`,
		`{"aux":{"ID":"sha256:<id>"}}`,
		`{"stream":"Step 3/6 : FROM base"}`,
		`{"stream":"\n"}`,
		`{"stream":" ---\u003e <id>\n"}`,
		`{"stream":"Step 4/6 : COPY hello.txt /hello.txt"}`,
		`{"stream":"\n"}`,
		`{"stream":" ---\u003e <id>\n"}`,
		`{"stream":"Step 5/6 : RUN cat /hello.txt"}`,
		`{"stream":"\n"}`,
		`{"stream":" ---\u003e Running in <id>\n"}`,
		`{"stream":"hello\n"}`,
		`{"stream":"Removing intermediate container <id>\n"}`,
		`{"stream":" ---\u003e <id>\n"}`,
		`{"stream":"Step 6/6 : CMD [\"cat\",\"/hello.txt\"]"}`,
		`{"stream":"\n"}`,
		`{"stream":" ---\u003e <id>\n"}`,
		`{"aux":{"ID":"sha256:<id>"}}`,
		`{"stream":"[Warning] One or more build-args [UNUSED] were not consumed\n"}`,
		`{"stream":"Successfully built <id>\n"}`,
		`{"stream":"Successfully tagged app:latest\n"}`,
		`{"stream":"Successfully tagged app:v2\n"}`,
		`{"stream":"Successfully tagged ` + w.registry + `/app:1\n"}`,
	}
	if diff := cmp.Diff(want, shape(resp.messages)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	// The aux ID, the short ID printed and the stored image agree.
	var id string
	for _, m := range resp.messages {
		if m.Aux != nil {
			id = m.Aux.(map[string]any)["ID"].(string)
		}
	}
	short := strings.TrimPrefix(id, "sha256:")[:12]
	steps := regexp.MustCompile(` ---> ([0-9a-f]{12})\n`).FindAllStringSubmatch(resp.text(), -1)
	if steps[len(steps)-1][1] != short || !strings.Contains(resp.text(), "Successfully built "+short+"\n") {
		t.Errorf("the last step and Successfully built do not name %s:\n%s", id, resp.text())
	}
	for _, tag := range []string{"app", "app:v2", w.registry + "/app:1"} {
		_, im, err := ts.store.Resolve(tag)
		if err != nil {
			t.Fatalf("%s is not in the store: %v", tag, err)
		}
		if im.ID.String() != id {
			t.Errorf("%s is %s, want %s", tag, im.ID, id)
		}
	}
	// Nothing of the build is left in the state directory.
	if left := stateLeftovers(t, ts); len(left) > 0 {
		t.Errorf("left in the state directory: %v", left)
	}
}

func urlJSON(v any) string {
	raw, _ := json.Marshal(v)
	return strings.NewReplacer("{", "%7B", "}", "%7D", `"`, "%22", ":", "%3A", ",", "%2C").Replace(string(raw))
}

// stateLeftovers lists what builds left in the server's state directory.
func stateLeftovers(t *testing.T, ts *buildServer) []string {
	t.Helper()
	entries, err := os.ReadDir(ts.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	return left
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestBuildQuiet(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	t.Run("success: only the ID", func(t *testing.T) {
		body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo hi\n"})
		resp := postBuild(t, ts.URL, "q=1&t=quiet", body, nil)
		if resp.status != http.StatusOK || !regexp.MustCompile(`^\{"stream":"sha256:[0-9a-f]{64}\\n"\}`+"\r\n$").MatchString(resp.body) {
			t.Fatalf("HTTP %d %q, want only the image ID", resp.status, resp.body)
		}
	})
	t.Run("failure: the log, then the error", func(t *testing.T) {
		body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo before-fail\nRUN echo failing; exit 3\n"})
		resp := postBuild(t, ts.URL, "q=1", body, nil)
		if resp.status != http.StatusOK {
			t.Fatalf("HTTP %d %s", resp.status, resp.body)
		}
		text := resp.text()
		for _, want := range []string{"Step 1/3 : FROM", "before-fail\n", "Step 3/3 : RUN echo failing; exit 3", "failing\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("replayed log lacks %q:\n%s", want, text)
			}
		}
		last := resp.last()
		if last.ErrorDetail == nil || last.ErrorDetail.Code != 3 {
			t.Errorf("last message %+v, want an error with code 3", last)
		}
	})
}

// TestBuildContextBodies builds from every body shape the CLI and curl send.
func TestBuildContextBodies(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{MaxConcurrent: 2})
	plain := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nCOPY a.txt /a.txt\nRUN cat /a.txt\n", "a.txt": "from the context\n"})
	compress := map[string]func() []byte{
		"plain": func() []byte { return plain },
		"gzip (--compress)": func() []byte {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(plain)
			zw.Close()
			return b.Bytes()
		},
		"bzip2": func() []byte {
			if _, err := exec.LookPath("bzip2"); err != nil {
				t.Skip("no bzip2 program")
			}
			cmd := exec.Command("bzip2", "-c")
			cmd.Stdin = bytes.NewReader(plain)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			return out
		},
		"xz": func() []byte {
			var b bytes.Buffer
			zw, _ := xz.NewWriter(&b)
			zw.Write(plain)
			zw.Close()
			return b.Bytes()
		},
		"zstd": func() []byte {
			var b bytes.Buffer
			zw, _ := zstd.NewWriter(&b)
			zw.Write(plain)
			zw.Close()
			return b.Bytes()
		},
		"no end-of-archive blocks (-f -)": func() []byte {
			return bytes.TrimRight(plain, "\x00") // the last file's data ends the stream
		},
	}
	for name, body := range compress {
		t.Run(name, func(t *testing.T) {
			resp := postBuild(t, ts.URL, "", body(), nil)
			if resp.status != http.StatusOK || !strings.Contains(resp.text(), "from the context\n") || resp.last().ErrorDetail != nil {
				t.Fatalf("HTTP %d %s\n%s", resp.status, resp.body, resp.text())
			}
		})
	}
}

// TestBuildDockerignoreSelfRemoval checks `docker build -f - .`'s context: the
// Dockerfile and .dockerignore are used, but COPY does not see them when .dockerignore
// names them (docs/server.md, "A Dockerfile from stdin or outside the context").
func TestBuildDockerignoreSelfRemoval(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	body := contextTar(t, map[string]string{
		".dockerfile.0123456789abcdef0123": "FROM " + w.busybox + "\nCOPY . /ctx/\nRUN find /ctx | sort\n",
		".dockerignore":                    "*.log\n.dockerignore\n.dockerfile.0123456789abcdef0123\n",
		"a.txt":                            "a",
		"x.log":                            "x",
	})
	resp := postBuild(t, ts.URL, "dockerfile=.dockerfile.0123456789abcdef0123", body, nil)
	if resp.status != http.StatusOK || resp.last().ErrorDetail != nil {
		t.Fatalf("HTTP %d %s", resp.status, resp.body)
	}
	if !strings.Contains(resp.text(), "/ctx\n/ctx/a.txt\nRemoving") {
		t.Errorf("COPY . saw more than a.txt:\n%s", resp.text())
	}
}

func TestBuildRemoteContext(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nCOPY a.txt /\nRUN cat /a.txt\n", "a.txt": "remote tar\n"}))
	zw.Close()
	files := map[string][]byte{
		"/ctx.tar.gz":       gz.Bytes(),
		"/plain.Dockerfile": []byte("FROM " + w.busybox + "\nRUN echo remote plain\n"),
	}
	web := httptestServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		rw.Write(data)
	}))
	tests := []struct{ path, want string }{
		{"/ctx.tar.gz", "remote tar\n"},
		{"/plain.Dockerfile", "remote plain\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp := postBuild(t, ts.URL, "remote="+web.URL+tt.path, nil, nil)
			if resp.status != http.StatusOK || !strings.Contains(resp.text(), tt.want) || resp.last().ErrorDetail != nil {
				t.Fatalf("HTTP %d %s\n%s", resp.status, resp.body, resp.text())
			}
		})
	}
	t.Run("404", func(t *testing.T) {
		resp := postBuild(t, ts.URL, "remote="+web.URL+"/nothere", nil, nil)
		if resp.status != 500 || !strings.Contains(resp.body, "404 Not Found") {
			t.Fatalf("HTTP %d %s", resp.status, resp.body)
		}
	})
}

// TestBuildRegistryConfig pulls the base from a registry that wants credentials,
// which only the request's X-Registry-Config carries.
func TestBuildRegistryConfig(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, requireBasicAuth)
	ts := newBuildServer(t, BuildConfig{})
	body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN true\n"})
	header := func(user, pass string) http.Header {
		cfg, _ := json.Marshal(map[string]map[string]string{w.registry: {"username": user, "password": pass, "serveraddress": w.registry}})
		return http.Header{"X-Registry-Config": {base64.URLEncoding.EncodeToString(cfg)}}
	}
	if resp := postBuild(t, ts.URL, "", body, header("kiln", "secret")); resp.status != 200 || resp.last().ErrorDetail != nil {
		t.Errorf("with credentials: HTTP %d %s", resp.status, resp.body)
	}
	resp := postBuild(t, ts.URL, "", body, header("kiln", "wrong"))
	if resp.last().ErrorDetail == nil {
		t.Errorf("with wrong credentials the pull succeeded")
	}
	if strings.Contains(resp.body, "wrong") {
		t.Errorf("the password appears in the answer: %s", resp.body)
	}
}

func TestBuildPushOnBuild(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{PushOnBuild: true})
	body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo pushed > /p\n"})
	resp := postBuild(t, ts.URL, "t=local-only&t="+w.registry+"/pushed:1", body, nil)
	if resp.status != 200 || resp.last().ErrorDetail != nil {
		t.Fatalf("HTTP %d %s", resp.status, resp.body)
	}
	text := resp.text()
	if !strings.Contains(text, "The push refers to repository ["+w.registry+"/pushed]\n") ||
		!regexp.MustCompile(`\n1: digest: sha256:[0-9a-f]{64} size: \d+\n$`).MatchString(text) {
		t.Errorf("push lines missing:\n%s", text)
	}
	if strings.Count(text, "The push refers to") != 1 {
		t.Errorf("a tag without a registry was pushed:\n%s", text)
	}
	ref, _ := name.ParseReference(w.registry + "/pushed:1")
	if _, err := remote.Image(ref); err != nil {
		t.Errorf("the image is not in the registry: %v", err)
	}
}

// TestBuildCacheFromSaid: --cache-from images are not used by kiln, and a build given
// some says so first in its stream, naming them; a build without prints nothing of it.
func TestBuildCacheFromSaid(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	body := func() []byte {
		return contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nENV A=1\n"})
	}
	resp := postBuild(t, ts.URL, "cachefrom="+urlJSON([]string{"app:latest", "app:cache"})+"&version=1", body(), nil)
	if resp.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.status, resp.body)
	}
	want := `{"stream":"[Warning] --cache-from app:latest, app:cache is not used by kiln: cached steps come from the server's own step cache, which every build of this server shares (kiln build --cache for a registry cache)\n"}`
	if got := shape(resp.messages); len(got) == 0 || got[0] != want {
		t.Errorf("first message %q, want %q", got, want)
	}
	plain := postBuild(t, ts.URL, "cachefrom=%5B%5D&version=1", body(), nil)
	if strings.Contains(plain.text(), "cache-from") {
		t.Errorf("an empty cachefrom was reported:\n%s", plain.text())
	}
}
