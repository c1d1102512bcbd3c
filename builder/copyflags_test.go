package builder_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/test/testworld"
)

// COPY/ADD flags of BuildKit's dialect in real builds; the expectations were checked
// against buildkitd v0.34.2 (see docs/dockerfile.md).
func TestCopyFlagsBuild(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: `FROM BUSYBOX
RUN mkdir -p /out/real /out/app && ln -s real /out/link && chmod 700 /out/app && mkdir /out/existing
COPY --exclude=*.md --exclude=sub/*.txt dir /ex/
ADD --exclude=*.txt dir /add/
COPY --chmod=u+x,go-w dir/sub/x.txt dir/keep.md /sym/
COPY --chmod=a=rX dir /symX
COPY --link a.txt /out/link/
COPY --link a.txt /out/app/
COPY --link a.txt /out/existing
COPY a.txt /out/real/plain
COPY --parents dir/sub/*.txt dir/./keep.md /par/
`,
		files: map[string]string{"a.txt": "A", "dir/keep.md": "K", "dir/top.txt": "T", "dir/sub/x.txt": "X", "dir/sub/y.go": "Y"},
	})
	wantFiles(t, files(t, img), map[string]string{
		"/ex/top.txt":         "f 0644 0:0 T",
		"/ex/keep.md":         "",
		"/ex/sub/x.txt":       "",
		"/ex/sub/y.go":        "f 0644 0:0 Y",
		"/add/keep.md":        "f 0644 0:0 K",
		"/add/top.txt":        "",
		"/add/sub/x.txt":      "f 0644 0:0 X",
		"/sym/x.txt":          "f 0744 0:0 X",
		"/sym/keep.md":        "f 0744 0:0 K",
		"/symX/keep.md":       "f 0444 0:0 K",
		"/symX/sub":           "d 0555 0:0",
		"/out/link/a.txt":     "f 0644 0:0 A",
		"/out/real/a.txt":     "",
		"/out/real/plain":     "f 0644 0:0 A",
		"/out/app":            "d 0755 0:0",
		"/out/existing":       "f 0644 0:0 A",
		"/out/existing/a.txt": "",
		"/par/dir/sub/x.txt":  "f 0644 0:0 X",
		"/par/dir/sub/y.go":   "",
		"/par/keep.md":        "f 0644 0:0 K",
	})
}

// The flags are part of a COPY's cache key, and a file --exclude leaves out is not: a
// changed excluded file hits, a changed --exclude or --chmod value misses.
func TestCacheCopyFlags(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"d/a.txt": "A", "d/b.md": "B"})
	df := func(flags string) string { return "FROM BUSYBOX\nCOPY " + flags + " d /x/\n" }
	cw.build(t, df("--exclude=*.md"), nil)
	cw.write(t, map[string]string{"d/b.md": "B2"})
	if again := cw.build(t, df("--exclude=*.md"), nil); len(again.misses) != 0 {
		t.Errorf("excluded file changed: misses %q, want none", again.misses)
	}
	for _, flags := range []string{"--exclude=*.txt", "--exclude=*.md --chmod=u+x", "--exclude=*.md --link"} {
		got := cw.build(t, df(flags), nil)
		if len(got.misses) != 1 {
			t.Errorf("%s: misses %q, want the COPY", flags, got.misses)
		}
	}
}

// ADD --checksum verifies a URL's content (BuildKit's message, naming the line, on a
// mismatch) and is refused where BuildKit refuses it; ADD --unpack=true extracts a
// downloaded archive.
func TestAddChecksumAndUnpack(t *testing.T) {
	w := newWorld(t)
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	_ = tw.WriteHeader(&tar.Header{Name: "inside", Mode: 0o640, Size: 1, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello.txt", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) })
	mux.HandleFunc("/a.tar", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(tarball.Bytes()) })
	srv := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(srv.Close)
	const good = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	const bad = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

	img, _ := mustBuild(t, w, buildCase{
		dockerfile: "FROM BUSYBOX\nADD --checksum=" + good + " " + srv.URL + "/hello.txt /dl/\n" +
			"ADD --unpack=true " + srv.URL + "/a.tar /un/\nADD --unpack=false a.tar /kept/\n",
		files: map[string]string{"a.tar": tarball.String()},
	})
	wantFiles(t, files(t, img), map[string]string{
		"/dl/hello.txt": "f 0600 0:0 hello",
		"/un/inside":    "f 0640 0:0 x",
		"/un/a.tar":     "",
		"/kept/a.tar":   "f 0644 0:0 <large>", // the archive itself
	})

	for _, tc := range []struct{ name, line, want string }{
		{"mismatch", "ADD --checksum=" + bad + " " + srv.URL + "/hello.txt /dl/",
			"digest mismatch " + good + ": " + bad},
		{"two sources", "ADD --checksum=" + good + " " + srv.URL + "/hello.txt a /dl/", "checksum can't be specified for multiple sources"},
		{"local source", "ADD --checksum=" + good + " a /dl/", "checksum requires HTTP(S) or Git sources"},
		{"malformed", "ADD --checksum=sha256:abc " + srv.URL + "/hello.txt /dl/", "invalid checksum digest length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\n" + tc.line + "\n", files: map[string]string{"a": "a"}})
			var ie *builder.InstructionError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ie) || ie.Line != 2 {
				t.Errorf("error %v, want %q on line 2", err, tc.want)
			}
		})
	}
}

// ADD of a git repository copies the checked-out files (never extracting archives),
// the .git directory only with --keep-git-dir, and url#ref:dir a subdirectory.
func TestAddGit(t *testing.T) {
	w := newWorld(t)
	work := t.TempDir()
	testworld.Git(t, work, "init", "-q", "-b", "main")
	if err := os.MkdirAll(filepath.Join(work, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a.txt": "A", "sub/b.txt": "B"} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testworld.Git(t, work, "add", ".")
	testworld.Git(t, work, "commit", "-q", "-m", "one")
	url := testworld.GitHTTP(t, work, testworld.WithPlainHTTP()).URL

	img, _ := mustBuild(t, w, buildCase{
		dockerfile: "FROM BUSYBOX\nADD " + url + " /g/\nADD --keep-git-dir=true " + url + " /k/\n" +
			"ADD --chown=7:8 " + url + "#main:sub /s/\n",
		files: map[string]string{"x": "x"},
	})
	got := files(t, img)
	wantFiles(t, got, map[string]string{
		"/g/a.txt":     "f 0644 0:0 A",
		"/g/sub/b.txt": "f 0644 0:0 B",
		"/g/.git":      "",
		"/k/a.txt":     "f 0644 0:0 A",
		"/s/b.txt":     "f 0644 7:8 B",
		"/s/a.txt":     "",
	})
	if _, ok := got["/k/.git/HEAD"]; !ok {
		t.Errorf("ADD --keep-git-dir=true: /k/.git/HEAD missing")
	}

	for _, line := range []string{"ADD " + url + " x /d/", "ADD " + url + "?ref=main /d/", "ADD --checksum=sha256:abc " + url + " /d/"} {
		_, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\n" + line + "\n", files: map[string]string{"x": "x"}})
		if err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: %v, want not supported", line, err)
		}
	}
}
