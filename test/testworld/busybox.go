package testworld

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is a file or directory added to the test busybox image.
type Entry struct {
	Name     string // relative, e.g. "etc/passwd"; a trailing "/" makes a directory
	Data     string
	Mode     int64 // 0 means 0644 for files, 0755 for directories
	UID, GID int
}

// busyboxApplets are the applets the test image links; tests' Dockerfiles use these.
var busyboxApplets = []string{"sh", "echo", "cat", "ls", "mkdir", "touch", "rm", "id", "true", "false",
	"chmod", "ln", "printf", "env", "sleep", "test", "find", "sort", "hostname"}

// BusyboxRegistry starts an in-process registry (go-containerregistry's) on loopback —
// behind wrap, when given, e.g. to demand credentials — and pushes a small busybox image
// made from the host's static /bin/busybox plus entries, with basic auth kiln:secret
// (which an unwrapped registry ignores). It returns the registry's host:port and the
// image's reference, host/busybox:test. Tests using it skip without /bin/busybox.
func BusyboxRegistry(t testing.TB, wrap func(http.Handler) http.Handler, entries ...Entry) (host, ref string) {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs a static /bin/busybox (Debian busybox-static)")
	}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	ref = host + "/busybox:test"

	layerTar := busyboxTar(t, bin, entries)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "kiln", Password: "secret"})); err != nil {
		t.Fatal(err)
	}
	return host, ref
}

func busyboxTar(t testing.TB, bin []byte, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1700000000, 0)
	write := func(h *tar.Header, data []byte) {
		h.ModTime = mod
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "root/"} {
		write(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}, nil)
	}
	write(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}, bin)
	for _, a := range busyboxApplets {
		write(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	for _, e := range entries {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: e.Mode, Uid: e.UID, Gid: e.GID, Size: int64(len(e.Data))}
		if strings.HasSuffix(e.Name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		} else if h.Mode == 0 {
			h.Mode = 0o644
		}
		write(h, []byte(e.Data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
