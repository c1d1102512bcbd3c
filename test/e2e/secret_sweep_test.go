package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// sweep looks for a secret's value in everything a build leaves behind: files and
// directories (tars and gzip streams opened, recursively: image archives, OCI
// layouts, layer blobs, the step cache), command outputs, registry repositories. JSON
// progress carries RUN output base64-encoded, so the value's base64 forms (at the
// three byte alignments) are looked for too.
type sweep struct {
	needles [][]byte
	hits    []string
	// scanned and opened count what was looked at, so a sweep that saw nothing fails.
	scanned, opened int
}

func newSweep(value string) *sweep {
	w := &sweep{needles: [][]byte{[]byte(value)}}
	for off := 0; off < 3; off++ {
		n := (len(value) - off) / 3 * 3
		w.needles = append(w.needles, []byte(base64.StdEncoding.EncodeToString([]byte(value[off:off+n]))))
	}
	return w
}

// bytes looks in data, then in what it unpacks to.
func (w *sweep) bytes(where string, data []byte, depth int) {
	w.scanned++
	for _, n := range w.needles {
		if bytes.Contains(data, n) {
			w.hits = append(w.hits, where)
			break
		}
	}
	if depth > 5 {
		return
	}
	switch {
	case len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		plain, err := io.ReadAll(io.LimitReader(zr, 1<<30))
		if err != nil && len(plain) == 0 {
			return
		}
		w.opened++
		w.bytes(where+" (gunzipped)", plain, depth+1)
	case len(data) >= 262 && string(data[257:262]) == "ustar":
		tr := tar.NewReader(bytes.NewReader(data))
		w.opened++
		for {
			h, err := tr.Next()
			if err != nil {
				return
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			entry, err := io.ReadAll(tr)
			if err != nil {
				return
			}
			w.bytes(where+"!"+h.Name, entry, depth+1)
		}
	}
}

// path looks in every regular file under root (root itself may be a file).
func (w *sweep) path(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (a build's scratch files)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		w.bytes(p, data, 0)
		return nil
	})
	if err != nil {
		t.Fatalf("sweeping %s: %v", root, err)
	}
}

// repository looks in one tag of a registry repository, or in all of them when tag is
// "": manifests, configs, layers.
func (w *sweep) repository(t *testing.T, repo, tag string) {
	t.Helper()
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{tag}
	if tag == "" {
		if tags, err = remote.List(r); err != nil {
			t.Fatalf("listing %s: %v", repo, err)
		}
	}
	if len(tags) == 0 {
		t.Fatalf("%s has no tags to sweep", repo)
	}
	for _, tg := range tags {
		ref := r.Tag(tg)
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		m, _ := img.RawManifest()
		w.bytes(ref.String()+" manifest", m, 0)
		c, _ := img.RawConfigFile()
		w.bytes(ref.String()+" config", c, 0)
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			w.bytes(fmt.Sprintf("%s layer %d", ref, i), data, 0)
		}
	}
}

// secretDockerfile mounts the secret every way (default file, env=, a target, next to
// a cache mount, all required) and uses it without ever printing it: its size and
// hashes reach the log and the image.
func secretDockerfile(reg string) string {
	return "FROM " + reg + "/busybox:1.35\n" +
		"RUN --mount=type=secret,id=tok,required=true echo \"file-bytes $(wc -c </run/secrets/tok)\" && sha256sum /run/secrets/tok | cut -c1-64 >/tok.sum\n" +
		"RUN --mount=type=secret,id=tok,env=TOK,required=true echo \"env-bytes ${#TOK}\" && printf %s \"$TOK\" | sha256sum | cut -c1-64 >/env.sum\n" +
		"RUN --mount=type=secret,id=tok,target=/etc/tok.txt,mode=0444,required=true --mount=type=cache,target=/c sha256sum /etc/tok.txt | cut -c1-64 >/c/sum && cp /c/sum /cache.sum\n"
}

// leakyDockerfile prints the secret and copies it into the image: the negative control.
func leakyDockerfile(reg string) string {
	return "FROM " + reg + "/busybox:1.35\n" +
		"RUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok && echo && cp /run/secrets/tok /leaked\n"
}

// secretValue is a value no other file holds, and the secret file holding it.
func secretValue(t *testing.T) (value, file string) {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	value = "ks" + hex.EncodeToString(b)
	file = filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	return value, file
}

// wantSums checks that the RUNs saw the secret: the files hold its hash.
func wantSums(t *testing.T, door string, value string, files map[string]string) {
	t.Helper()
	sum := sha256.Sum256([]byte(value))
	want := hex.EncodeToString(sum[:]) + "\n"
	for _, f := range []string{"tok.sum", "env.sum", "cache.sum"} {
		if files[f] != want {
			t.Errorf("%s: /%s = %q, want the secret's hash %q", door, f, files[f], want)
		}
	}
}

// imageFiles reads the named files of a docker archive's image.
func imageFiles(t *testing.T, archive string, names ...string) map[string]string {
	t.Helper()
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.TrimPrefix(h.Name, "/") == n {
				b, _ := io.ReadAll(tr)
				got[n] = string(b)
			}
		}
	}
}

// decodeB64 decodes standard base64, as JSON carries []byte.
func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
