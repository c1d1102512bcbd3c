package copier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// newFileServer serves fixed responses on 127.0.0.1.
func newFileServer(t *testing.T, archive []byte) *httptest.Server {
	t.Helper()
	lastMod := time.Unix(1234567890, 0).UTC().Format(http.TimeFormat)
	mux := http.NewServeMux()
	mux.HandleFunc("/files/hello.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", lastMod)
		_, _ = w.Write([]byte("hello"))
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("no date"))
	})
	mux.HandleFunc("/dir/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("index"))
	})
	mux.HandleFunc("/cd/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="report.csv"`)
		_, _ = w.Write([]byte("a,b"))
	})
	mux.HandleFunc("/archive.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(archive)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/files/hello.txt", http.StatusFound)
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not here", http.StatusNotFound)
	})
	srv := httptest.NewServer(mux) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

const (
	helloSHA256 = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	badSHA256   = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
)

func TestAddURL(t *testing.T) {
	t.Parallel()
	yes := true
	archive := gzipTar(t, tarEntry{name: "inside", body: "x"})
	srv := newFileServer(t, archive)
	u := srv.URL
	cases := []struct {
		name     string
		root     []spec
		sources  []string
		dest     string
		chown    *Owner
		wantPath string // image path of the downloaded file
		wantBody string
		wantTime int64 // mtime, Unix seconds
		wantErr  string
		checksum string
		unpack   *bool
		wantMode os.FileMode // 0 means a download's 0600
	}{
		{name: "last-modified", sources: []string{u + "/files/hello.txt"}, dest: "/dl/",
			wantPath: "/dl/hello.txt", wantBody: "hello", wantTime: 1234567890},
		{name: "no-last-modified-epoch", sources: []string{u + "/plain"}, dest: "/dl/",
			wantPath: "/dl/plain", wantBody: "no date", wantTime: 0},
		{name: "rename", sources: []string{u + "/files/hello.txt"}, dest: "/etc/greeting",
			wantPath: "/etc/greeting", wantBody: "hello", wantTime: 1234567890},
		{name: "query-ignored", sources: []string{u + "/files/hello.txt?v=1"}, dest: "/dl/",
			wantPath: "/dl/hello.txt", wantBody: "hello", wantTime: 1234567890},
		{name: "redirect", sources: []string{u + "/redirect"}, dest: "/dl/",
			wantPath: "/dl/redirect", wantBody: "hello", wantTime: 1234567890},
		{name: "content-disposition", sources: []string{u + "/cd/"}, dest: "/dl/",
			wantPath: "/dl/report.csv", wantBody: "a,b", wantTime: 0},
		{name: "unnamed-to-file", sources: []string{u + "/dir/"}, dest: "/named",
			wantPath: "/named", wantBody: "index", wantTime: 0},
		{name: "unnamed-into-existing-dir", root: []spec{"d"}, sources: []string{u + "/dir/"}, dest: "/d",
			wantPath: "/d/__unnamed__", wantBody: "index", wantTime: 0},
		{name: "unnamed-to-slash", sources: []string{u + "/dir/"}, dest: "/dl/",
			wantErr: "ADD failed: cannot determine filename for source " + u + "/dir/"},
		{name: "never-extracted", sources: []string{u + "/archive.tar.gz"}, dest: "/dl/",
			wantPath: "/dl/archive.tar.gz", wantBody: string(archive), wantTime: 0},
		{name: "not-found", sources: []string{u + "/missing"}, dest: "/dl/",
			wantErr: "ADD failed: failed to GET " + u + "/missing with status 404 Not Found: not here"},
		{name: "chown", sources: []string{u + "/files/hello.txt"}, dest: "/o/", chown: &Owner{UID: 42, GID: 43},
			wantPath: "/o/hello.txt", wantBody: "hello", wantTime: 1234567890},
		// ADD --checksum (BuildKit dialect): verified, BuildKit's message on a mismatch.
		{name: "checksum-ok", sources: []string{u + "/files/hello.txt"}, dest: "/dl/", checksum: helloSHA256,
			wantPath: "/dl/hello.txt", wantBody: "hello", wantTime: 1234567890},
		{name: "checksum-sha512-ok", sources: []string{u + "/files/hello.txt"}, dest: "/dl/", checksum: string(digest.SHA512.FromString("hello")),
			wantPath: "/dl/hello.txt", wantBody: "hello", wantTime: 1234567890},
		{name: "checksum-mismatch", sources: []string{u + "/files/hello.txt"}, dest: "/dl/", checksum: badSHA256,
			wantErr: "ADD failed: digest mismatch " + helloSHA256 + ": " + badSHA256},
		{name: "checksum-malformed", sources: []string{u + "/files/hello.txt"}, dest: "/dl/", checksum: "sha256:abc",
			wantErr: "ADD failed: --checksum=sha256:abc: invalid checksum digest length"},
		// ADD --unpack (BuildKit dialect): true extracts a downloaded archive.
		{name: "unpack-url", sources: []string{u + "/archive.tar.gz"}, dest: "/dl/", unpack: &yes,
			wantPath: "/dl/inside", wantBody: "x", wantTime: 1000000000, wantMode: 0o644},
		{name: "unpack-url-not-archive", sources: []string{u + "/files/hello.txt"}, dest: "/dl/", unpack: &yes,
			wantPath: "/dl/hello.txt", wantBody: "hello", wantTime: 1234567890},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.wantErr == "" {
				needRoot(t) // the default owner is 0:0
			}
			root, tmp := t.TempDir(), t.TempDir()
			makeTree(t, root, tc.root...)
			req := Request{Sources: tc.sources, Dest: tc.dest, Add: true, Chown: tc.chown, TempDir: tmp, HTTPClient: srv.Client(),
				Checksum: tc.checksum, Unpack: tc.unpack}
			_, err := Copy(context.Background(), Source{Root: t.TempDir(), Context: true}, root, req)
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("download left %d entries in TempDir", len(left))
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Copy error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(root, tc.wantPath)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tc.wantBody {
				t.Errorf("content %q, want %q", data, tc.wantBody)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			wantMode := tc.wantMode
			if wantMode == 0 {
				wantMode = 0o600
			}
			if fi.Mode() != wantMode {
				t.Errorf("mode %v, want %v", fi.Mode(), wantMode)
			}
			if got := fi.ModTime().Unix(); got != tc.wantTime {
				t.Errorf("mtime %d, want %d", got, tc.wantTime)
			}
			st := fi.Sys().(*syscall.Stat_t)
			want := Owner{}
			if tc.chown != nil {
				want = *tc.chown
			}
			if int(st.Uid) != want.UID || int(st.Gid) != want.GID {
				t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, want.UID, want.GID)
			}
		})
	}
}

func TestFilenameForDownload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ path, disposition, want string }{
		{"/a/b.txt", "", "b.txt"},
		{"/a/b%20c", "", "b%20c"},
		{"/a/", "", ""},
		{"", "", ""},
		{"/..", "", ""},
		{"/", `attachment; filename="x.bin"`, "x.bin"},
		{"/", `attachment; filename="../../etc/passwd"`, "passwd"},
		{"/", `attachment; filename="dir/"`, ""},
		{"/", `attachment; filename=".."`, ""},
		{"/", `garbage;;`, ""},
	} {
		if got := filenameForDownload(tc.path, tc.disposition); got != tc.want {
			t.Errorf("filenameForDownload(%q, %q) = %q, want %q", tc.path, tc.disposition, got, tc.want)
		}
	}
}

func TestLastModified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		want   int64
	}{
		{"", 0},
		{"not a date", 0},
		{"Fri, 13 Feb 2009 23:31:30 GMT", 1234567890},
		{"Thu, 01 Jan 1960 00:00:00 GMT", 0},
	} {
		if got := lastModified(tc.header).Unix(); got != tc.want {
			t.Errorf("lastModified(%q) = %d, want %d", tc.header, got, tc.want)
		}
	}
}

// TestAddURLCancelled checks that a cancelled context stops a download.
func TestAddURLCancelled(t *testing.T) {
	t.Parallel()
	srv := newFileServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := Request{Sources: []string{srv.URL + "/files/hello.txt"}, Dest: "/x", Add: true, TempDir: t.TempDir(), HTTPClient: srv.Client()}
	_, err := Copy(ctx, Source{Root: t.TempDir(), Context: true}, t.TempDir(), req)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Copy error = %v, want context canceled", err)
	}
}
