package apiserver

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/test/testworld"
)

// tarManifest reads manifest.json out of a docker-archive.
func tarManifest(t *testing.T, archive []byte) tarball.Manifest {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("no manifest.json in the archive")
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		if hdr.Name == "manifest.json" {
			var m tarball.Manifest
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
}

func loadedLines(t *testing.T, body []byte) []string {
	t.Helper()
	var lines []string
	for _, m := range streamMessages(t, body) {
		if m.Error != "" {
			t.Fatalf("load failed in-stream: %s", m.Error)
		}
		lines = append(lines, m.Stream)
	}
	return lines
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	src := newImageTestServer(t)
	tagged := src.put(t, apiImage(t, time.Unix(100, 0), nil), "apicap-basic", "127.0.0.1:5010/apicap/x:1", "apicap-basic:v2")
	untagged := src.put(t, apiImage(t, time.Unix(50, 0), nil))

	resp, archive := src.call(t, http.MethodGet, "/v1.41/images/get?names=apicap-basic%3Alatest&names=127.0.0.1%3A5010%2Fapicap%2Fx%3A1&names="+untagged.String()[7:19], nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("save: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	m := tarManifest(t, archive)
	var tags [][]string
	for _, e := range m {
		tags = append(tags, e.RepoTags)
	}
	// One entry per image, in the order named, tags in the order named (dockerd's).
	if diff := cmp.Diff([][]string{{"apicap-basic:latest", "127.0.0.1:5010/apicap/x:1"}, nil}, tags); diff != "" {
		t.Errorf("manifest.json RepoTags (-want +got):\n%s", diff)
	}

	dst := newImageTestServer(t)
	resp, body := dst.call(t, http.MethodPost, "/v1.41/images/load?quiet=1", bytes.NewReader(archive), http.Header{"Content-Type": {"application/x-tar"}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("load: %d %s", resp.StatusCode, body)
	}
	// [captured: load]
	want := []string{"Loaded image: apicap-basic:latest\n", "Loaded image: 127.0.0.1:5010/apicap/x:1\n", "Loaded image ID: " + untagged.String() + "\n"}
	if diff := cmp.Diff(want, loadedLines(t, body)); diff != "" {
		t.Errorf("load stream (-want +got):\n%s", diff)
	}
	for ref, id := range map[string]v1.Hash{"apicap-basic": tagged, "127.0.0.1:5010/apicap/x:1": tagged, untagged.String(): untagged} {
		img, im, err := dst.store.Resolve(ref)
		if err != nil {
			t.Errorf("%s after load: %v", ref, err)
			continue
		}
		if im.ID != id {
			t.Errorf("%s loaded as %s, saved as %s", ref, im.ID, id)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s after load: %v", ref, err)
		}
	}
	if _, _, err := dst.store.Resolve("apicap-basic:v2"); err == nil {
		t.Error("apicap-basic:v2 was not asked for but arrived")
	}

	// A name without a tag saves every tag of the repository; /images/{name}/get too.
	resp, archive = src.call(t, http.MethodGet, "/v1.41/images/apicap-basic/get", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("save by repository: %d", resp.StatusCode)
	}
	m = tarManifest(t, archive)
	if len(m) != 1 || !cmp.Equal(m[0].RepoTags, []string{"apicap-basic:latest", "apicap-basic:v2"}) {
		t.Errorf("save apicap-basic: manifest %+v", m)
	}

	// Loading again over a tag that moved reports the rename as dockerd does.
	other := src.put(t, apiImage(t, time.Unix(200, 0), nil), "apicap-basic")
	_, archive = src.call(t, http.MethodGet, "/v1.41/images/get?names=apicap-basic", nil, nil)
	_, body = dst.call(t, http.MethodPost, "/v1.41/images/load", bytes.NewReader(archive), nil)
	want = []string{
		fmt.Sprintf("The image apicap-basic:latest already exists, renaming the old one with ID %s to empty string\n", tagged),
		"Loaded image: apicap-basic:latest\n",
		"Loaded image: apicap-basic:v2\n",
	}
	if diff := cmp.Diff(want, loadedLines(t, body)); diff != "" {
		t.Errorf("second load (-want +got):\n%s", diff)
	}
	if _, im, _ := dst.store.Resolve("apicap-basic"); im == nil || im.ID != other {
		t.Errorf("apicap-basic after the second load: %+v", im)
	}
}

func TestLoadCompressedAndOCI(t *testing.T) {
	t.Parallel()
	src := newImageTestServer(t)
	id := src.put(t, apiImage(t, time.Unix(100, 0), nil), "app:1")
	_, archive := src.call(t, http.MethodGet, "/v1.41/images/get?names=app%3A1", nil, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(archive)
	_ = zw.Close()

	img := apiImage(t, time.Unix(300, 0), nil)
	ociID, _ := img.ConfigName()
	ociArchive := ociLayoutTar(t, img, map[string]string{"io.containerd.image.name": "docker.io/library/oci-app:2", "org.opencontainers.image.ref.name": "2"})
	bareOCI := ociLayoutTar(t, img, map[string]string{"org.opencontainers.image.ref.name": "latest"})

	tests := []struct {
		name string
		body []byte
		want []string
	}{
		{"gzip docker-archive", gz.Bytes(), []string{"Loaded image: app:1\n"}},
		{"OCI layout with a containerd name", ociArchive, []string{"Loaded image: oci-app:2\n"}},
		{"OCI layout with a bare tag", bareOCI, []string{"Loaded image ID: " + ociID.String() + "\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := newImageTestServer(t)
			resp, body := dst.call(t, http.MethodPost, "/images/load", bytes.NewReader(tt.body), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("load: %d %s", resp.StatusCode, body)
			}
			if diff := cmp.Diff(tt.want, loadedLines(t, body)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	_ = id
}

// ociLayoutTar writes img into an OCI layout with the given annotations and tars it.
func ociLayoutTar(t *testing.T, img v1.Image, ann map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(ann)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = tw.Close()
	return buf.Bytes()
}

func TestLoadRejectsBadArchives(t *testing.T) {
	t.Parallel()
	ts := newImageTestServer(t)
	var noManifest bytes.Buffer
	tw := tar.NewWriter(&noManifest)
	_ = tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("hi"))
	_ = tw.Close()
	var badManifest bytes.Buffer
	tw = tar.NewWriter(&badManifest)
	_ = tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("[{]]]"))
	_ = tw.Close()
	var escaping bytes.Buffer
	tw = tar.NewWriter(&escaping)
	for _, n := range []string{"../../escape", "oci-layout", "index.json"} {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("{}"))
	}
	_ = tw.Close()

	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"not a tar", bytes.Repeat([]byte("garbage "), 200), "invalid image archive: not a tar archive"},
		{"empty", nil, "invalid image archive: it has neither manifest.json"},
		{"no manifest", noManifest.Bytes(), "invalid image archive: it has neither manifest.json"},
		{"bad manifest.json", badManifest.Bytes(), "invalid image archive: manifest.json"},
		{"broken gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, "reading the image archive"},
		{"hostile names, empty index", escaping.Bytes(), "invalid image archive: index.json lists no image"},
	}
	for _, tt := range tests {
		resp, body := ts.call(t, http.MethodPost, "/v1.41/images/load", bytes.NewReader(tt.body), nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s: %d %s, want 400 containing %q", tt.name, resp.StatusCode, body, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(ts.store.Dir()), "escape")); err == nil {
		t.Error("a tar entry escaped the scratch directory")
	}
}

// TestSaveLoadsIntoDocker hands /images/get's archive to a real dockerd, when one
// answers, and removes exactly the tag it loaded.
func TestSaveLoadsIntoDocker(t *testing.T) {
	t.Parallel()
	docker := testworld.Docker(t)
	if docker == "" {
		return
	}
	src := newImageTestServer(t)
	tag := fmt.Sprintf("kiln-apiserver-test-%08x:1", rand.Uint32())
	id := src.put(t, apiImage(t, time.Unix(100, 0), nil), tag)
	resp, archive := src.call(t, http.MethodGet, "/v1.41/images/get?names="+tag, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(file, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, docker, "load", "-i", file).CombinedOutput()
	if err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(docker, "rmi", tag).CombinedOutput(); err != nil {
			t.Errorf("docker rmi %s: %v\n%s", tag, err, out)
		}
	})
	if !strings.Contains(string(out), "Loaded image: "+tag) {
		t.Errorf("docker load said %q", out)
	}
	got, err := exec.CommandContext(ctx, docker, "image", "inspect", "--format", "{{.Id}}", tag).Output()
	if err != nil {
		t.Fatalf("docker image inspect: %v", err)
	}
	if strings.TrimSpace(string(got)) != id.String() {
		t.Errorf("dockerd has %s as %s, kiln as %s", tag, got, id)
	}
}
