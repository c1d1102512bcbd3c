package contexts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// gcsSuiteTarGz is suiteTree as a gzipped tar, the form kaniko's gs:// contexts take.
func gcsSuiteTarGz(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	writeSuiteTar(t, zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gcsTar is a plain tar of regular files, in the order given.
func gcsTar(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gcsSuiteSource is the gs:// entry of the source conformance suite: suiteTree
// uploaded to a fresh emulator.
func gcsSuiteSource(t *testing.T) (string, []OpenOption) {
	endpoint, store := testworld.GCS(t)
	store.CreateBucket(t, "suite")
	store.Put(t, "suite", "builds/ctx.tar.gz", gcsSuiteTarGz(t))
	return "gs://suite/builds/ctx.tar.gz", []OpenOption{WithCloud(CloudOptions{GCSEndpoint: endpoint})}
}

// TestGCS runs the gs:// source against a real Cloud Storage emulator
// (fake-gcs-server).
func TestGCS(t *testing.T) {
	t.Parallel()
	endpoint, store := testworld.GCS(t)
	for _, b := range []string{"ctx", "default", "empty"} {
		store.CreateBucket(t, b)
	}
	store.Put(t, "ctx", "builds/ctx.tar.gz", gcsSuiteTarGz(t))
	store.Put(t, "ctx", "big.tar", gcsTar(t, [2]string{"Dockerfile", "FROM scratch\n"},
		[2]string{"big", strings.Repeat("x", 1<<20)}))
	store.Put(t, "ctx", "evil.tar", gcsTar(t, [2]string{"Dockerfile", "x\n"}, [2]string{"../escaped", "x\n"}))
	store.Put(t, "default", "context.tar.gz", gcsSuiteTarGz(t))
	cloud := WithCloud(CloudOptions{GCSEndpoint: endpoint})

	tests := []struct {
		name     string
		spec     string
		opts     []OpenOption
		files    map[string]string // path in the context: its suiteTree name
		excluded []string
		wantErr  []string // parts of the error; nil for success
		wantIs   error
	}{
		{
			name:     "tar.gz",
			spec:     "gs://ctx/builds/ctx.tar.gz",
			files:    map[string]string{"Dockerfile": "Dockerfile", "run.sh": "run.sh", "app/main.go": "app/main.go"},
			excluded: []string{"debug.log"},
		},
		{
			name:     "sub-path",
			spec:     "gs://ctx/builds/ctx.tar.gz",
			opts:     []OpenOption{WithSubPath("app")},
			files:    map[string]string{"main.go": "app/main.go", "secret": "app/secret"},
			excluded: []string{"secret"},
		},
		{
			name:  "bucket only means context.tar.gz",
			spec:  "gs://default",
			files: map[string]string{"Dockerfile": "Dockerfile"},
		},
		{
			name:  "bucket and slash mean context.tar.gz",
			spec:  "gs://default/",
			files: map[string]string{"Dockerfile": "Dockerfile"},
		},
		{
			name:    "bucket only without context.tar.gz",
			spec:    "gs://empty",
			wantErr: []string{"gs://empty/context.tar.gz", "no such object"},
			wantIs:  errGCSNoObject,
		},
		{
			name:    "missing object",
			spec:    "gs://ctx/builds/nope.tar.gz",
			wantErr: []string{"gs://ctx/builds/nope.tar.gz", "no such object"},
			wantIs:  errGCSNoObject,
		},
		{
			name:    "missing bucket",
			spec:    "gs://no-such-bucket/ctx.tar.gz",
			wantErr: []string{"gs://no-such-bucket/ctx.tar.gz", "no such bucket"},
		},
		{
			name:    "directory prefix",
			spec:    "gs://ctx/builds/",
			wantErr: []string{"gs://ctx/builds/", "not a directory"},
		},
		{
			name:    "larger than the limit",
			spec:    "gs://ctx/big.tar",
			opts:    []OpenOption{WithArchiveOptions(WithMaxBytes(64 << 10))},
			wantErr: []string{"gs://ctx/big.tar"},
			wantIs:  ErrLimitExceeded,
		},
		{
			name:    "entry climbs out",
			spec:    "gs://ctx/evil.tar",
			wantErr: []string{"gs://ctx/evil.tar", `"../escaped"`, "escapes the context"},
		},
		{
			name:    "sub-path missing",
			spec:    "gs://ctx/builds/ctx.tar.gz",
			opts:    []OpenOption{WithSubPath("nope")},
			wantErr: []string{"nope"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			opts := append([]OpenOption{cloud, WithTempDir(tmp)}, tt.opts...)
			c, err := Open(context.Background(), tt.spec, opts...)
			if tt.wantErr != nil {
				if err == nil {
					c.Close()
					t.Fatalf("Open(%q) succeeded, want an error", tt.spec)
				}
				t.Logf("Open(%q): %v", tt.spec, err)
				for _, part := range tt.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("Open(%q) = %v, want it to name %q", tt.spec, err, part)
					}
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("Open(%q) = %v, want errors.Is %v", tt.spec, err, tt.wantIs)
				}
				if left, _ := os.ReadDir(tmp); len(left) != 0 {
					t.Errorf("a failed Open left %d entries in the temp dir", len(left))
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.spec, err)
			}
			defer c.Close()
			for rel, from := range tt.files {
				got, err := os.ReadFile(filepath.Join(c.Dir, rel))
				if want := suiteTree[from].content; err != nil || string(got) != want {
					t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
				}
			}
			for _, rel := range tt.excluded {
				if !c.Excluded(rel) {
					t.Errorf("%s is not excluded by .dockerignore %v", rel, c.Patterns)
				}
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c, err := Open(ctx, "gs://ctx/builds/ctx.tar.gz", cloud, WithTempDir(t.TempDir()))
		if !errors.Is(err, context.Canceled) {
			c.Close()
			t.Fatalf("Open with a cancelled context = %v, want context.Canceled", err)
		}
	})
}

// TestGCSEmulatorHost checks that STORAGE_EMULATOR_HOST alone (no endpoint option)
// sends the request to the emulator without credentials. Not parallel: it sets the
// environment.
func TestGCSEmulatorHost(t *testing.T) {
	endpoint, store := testworld.GCS(t)
	store.CreateBucket(t, "ctx")
	store.Put(t, "ctx", "ctx.tar.gz", gcsSuiteTarGz(t))
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(endpoint, "http://"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
	c, err := Open(context.Background(), "gs://ctx/ctx.tar.gz", WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	if _, err := os.Stat(filepath.Join(c.Dir, "Dockerfile")); err != nil {
		t.Error(err)
	}
}

// TestGCSPermissionDenied drives the download against a stand-in service (a hand-written
// fake: the emulator does not check permissions) that refuses every request as
// Cloud Storage does for a caller without storage.objects.get.
func TestGCSPermissionDenied(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>Access denied.</Message></Error>`)
	}))
	t.Cleanup(srv.Close)
	c, err := Open(context.Background(), "gs://private/ctx.tar.gz",
		WithCloud(CloudOptions{GCSEndpoint: srv.URL}), WithTempDir(t.TempDir()))
	if err == nil {
		c.Close()
		t.Fatal("Open succeeded against a service that refuses everything")
	}
	var gerr *gcsStatusError
	if !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "gs://private/ctx.tar.gz") ||
		!errors.As(err, &gerr) || gerr.Code != http.StatusForbidden {
		t.Errorf("Open = %v, want a permission-denied error naming the object and carrying the 403", err)
	}
	if requests.Load() == 0 {
		t.Error("the stand-in service saw no request: the endpoint override was not used")
	}
}

func TestParseGCSSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec, bucket, object string
		wantErr              string
	}{
		{spec: "gs://b-1/path/to/ctx.tar.gz", bucket: "b-1", object: "path/to/ctx.tar.gz"},
		{spec: "gs://my.bucket_x/ctx.tar", bucket: "my.bucket_x", object: "ctx.tar"},
		{spec: "gs://bkt", bucket: "bkt", object: "context.tar.gz"},
		{spec: "gs://bkt/", bucket: "bkt", object: "context.tar.gz"},
		{spec: "gs://bkt/dir/", bucket: "bkt", object: "dir/"},
		{spec: "gs://", wantErr: "no bucket name"},
		{spec: "gs:///ctx.tar.gz", wantErr: "no bucket name"},
		{spec: "gs://Upper/ctx.tar.gz", wantErr: "not a valid bucket name"},
		{spec: "gs://ab/ctx.tar.gz", wantErr: "not a valid bucket name"},
		{spec: "gs://user:hunter2@bkt/ctx.tar.gz", wantErr: "not credentials"},
		{spec: "s3://bkt/ctx.tar.gz", wantErr: "not a gs:// URL"},
	}
	for _, tt := range tests {
		bucket, object, err := parseGCSSpec(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseGCSSpec(%q) = %v, want an error with %q", tt.spec, err, tt.wantErr)
			} else if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("parseGCSSpec(%q) error %q repeats the password", tt.spec, err)
			}
			continue
		}
		if err != nil || bucket != tt.bucket || object != tt.object {
			t.Errorf("parseGCSSpec(%q) = %q, %q, %v; want %q, %q", tt.spec, bucket, object, err, tt.bucket, tt.object)
		}
	}
}

func TestGCSJSONEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "127.0.0.1:4443", want: "http://127.0.0.1:4443/storage/v1/"},
		{in: "http://127.0.0.1:4443", want: "http://127.0.0.1:4443/storage/v1/"},
		{in: "https://gcs.example/", want: "https://gcs.example/storage/v1/"},
		{in: "http://127.0.0.1:4443/storage/v1", want: "http://127.0.0.1:4443/storage/v1/"},
		{in: "ftp://127.0.0.1", wantErr: "want host:port"},
		{in: "http://", wantErr: "want host:port"},
		{in: "http://u:hunter2@127.0.0.1:4443", wantErr: "credentials in the URL"},
	}
	for _, tt := range tests {
		got, err := gcsJSONEndpoint(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("gcsJSONEndpoint(%q) = %q, %v; want an error with %q and no password", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("gcsJSONEndpoint(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestGCSReadError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		object string
		err    error
		want   string
	}{
		{"not found", "ctx.tar.gz", errGCSNoObject, "no such object"},
		{"directory", "dir/", errGCSNoObject, "not a directory"},
		{"unauthorized", "ctx.tar.gz", &gcsStatusError{Code: http.StatusUnauthorized, Status: "401 Unauthorized"}, "permission denied"},
		{"forbidden", "ctx.tar.gz", &gcsStatusError{Code: http.StatusForbidden, Status: "403 Forbidden"}, "permission denied"},
		{"other", "ctx.tar.gz", &gcsStatusError{Code: http.StatusServiceUnavailable, Status: "503 Service Unavailable"}, "503"},
	}
	for _, tt := range tests {
		err := gcsReadError("gs://b/"+tt.object, tt.object, tt.err)
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "gs://b/"+tt.object) || !errors.Is(err, tt.err) {
			t.Errorf("%s: gcsReadError = %v, want it to name the object, say %q and wrap %v", tt.name, err, tt.want, tt.err)
		}
	}
}
