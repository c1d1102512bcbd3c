package contexts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kiln-build/kiln/test/testworld"
)

// s3SuiteTarGz is suiteTree as a gzipped tar.
func s3SuiteTarGz(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	writeSuiteTar(t, zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// s3EscapingTar is an archive whose second entry climbs out of the context.
func s3EscapingTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"Dockerfile", "../escaped"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openS3 opens spec against the test server with a fresh temporary directory.
func openS3(t *testing.T, srv *testworld.S3Server, spec string, pathStyle bool, opts ...OpenOption) (*Context, error) {
	t.Helper()
	opts = append(opts, WithTempDir(t.TempDir()),
		WithCloud(CloudOptions{S3Endpoint: srv.Endpoint, S3ForcePathStyle: pathStyle}))
	c, err := Open(context.Background(), spec, opts...)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// TestS3 runs the s3:// source against a real S3-compatible server (s3rver). It is
// not parallel because the SDK's default chain reads the environment, which the
// test sets; its subtests run in parallel with each other.
func TestS3(t *testing.T) {
	srv := testworld.S3(t)
	srv.SetEnv(t)
	srv.CreateBucket(t, "ctx")
	srv.CreateBucket(t, "default")
	srv.CreateBucket(t, "empty")
	srv.Put(t, "ctx", "builds/ctx.tar.gz", s3SuiteTarGz(t))
	srv.Put(t, "ctx", "evil.tar", s3EscapingTar(t))
	srv.Put(t, "default", s3DefaultObject, s3SuiteTarGz(t))

	// Environment changes first, each in a subtest of its own, before the parallel
	// subtests below start.
	t.Run("anonymous", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		c, err := openS3(t, srv, "s3://ctx/builds/ctx.tar.gz", true)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		checkS3Tree(t, c, "", "Dockerfile", "app/main.go")
	})
	t.Run("instance metadata does not answer", func(t *testing.T) {
		// A metadata service that accepts connections and never answers is the worst
		// case: the build must go on unsigned within the credentials bound.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "")
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+l.Addr().String())
		start := time.Now()
		c, err := openS3(t, srv, "s3://ctx/builds/ctx.tar.gz", true)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if took := time.Since(start); took > s3CredentialsTimeout+2*time.Second {
			t.Errorf("Open took %v, want at most about %v", took, s3CredentialsTimeout)
		}
		checkS3Tree(t, c, "", "Dockerfile")
	})
	t.Run("unknown access key", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "NOBODY")
		_, err := openS3(t, srv, "s3://ctx/builds/ctx.tar.gz", true)
		if err == nil || !strings.Contains(err.Error(), "the AWS credentials were rejected") {
			t.Fatalf("Open = %v, want the credentials rejected", err)
		}
		if strings.Contains(err.Error(), testworld.S3SecretKey) {
			t.Errorf("error %q repeats the secret key", err)
		}
	})

	tests := []struct {
		name      string
		spec      string
		pathStyle bool
		opts      []OpenOption
		sub       string   // the sub-path checkS3Tree looks at
		files     []string // suiteTree names that must arrive
		wantErr   string   // "" for success
		wantIs    error
	}{
		{name: "tar.gz path-style", spec: "s3://ctx/builds/ctx.tar.gz", pathStyle: true,
			files: []string{"Dockerfile", "run.sh", "app/main.go", "app/secret"}},
		{name: "tar.gz, IP endpoint addressed path-style unasked", spec: "s3://ctx/builds/ctx.tar.gz",
			files: []string{"Dockerfile"}},
		{name: "sub-path", spec: "s3://ctx/builds/ctx.tar.gz", pathStyle: true,
			opts: []OpenOption{WithSubPath("app")}, sub: "app", files: []string{"app/main.go"}},
		{name: "bucket only means context.tar.gz", spec: "s3://default", pathStyle: true,
			files: []string{"Dockerfile", "app/main.go"}},
		{name: "bucket and slash mean context.tar.gz", spec: "s3://default/", pathStyle: true,
			files: []string{"Dockerfile"}},
		{name: "bucket only, no context.tar.gz", spec: "s3://empty", pathStyle: true,
			wantErr: "context s3://empty/context.tar.gz: no such object (an s3:// URL without a key names the object context.tar.gz)"},
		{name: "missing object", spec: "s3://ctx/builds/nope.tar.gz", pathStyle: true,
			wantErr: "context s3://ctx/builds/nope.tar.gz: no such object"},
		{name: "directory key", spec: "s3://ctx/builds/", pathStyle: true,
			wantErr: "context s3://ctx/builds/: no such object; an s3:// context names one archive object, not a directory"},
		{name: "missing bucket", spec: "s3://no-such-bucket/ctx.tar.gz", pathStyle: true,
			wantErr: "context s3://no-such-bucket/ctx.tar.gz: no such bucket"},
		{name: "size limit", spec: "s3://ctx/builds/ctx.tar.gz", pathStyle: true,
			opts:    []OpenOption{WithArchiveOptions(WithMaxBytes(10))},
			wantErr: "context s3://ctx/builds/ctx.tar.gz: ", wantIs: ErrLimitExceeded},
		{name: "entry escaping the context", spec: "s3://ctx/evil.tar", pathStyle: true,
			wantErr: `context s3://ctx/evil.tar: build context entry "../escaped": path escapes the context`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := openS3(t, srv, tt.spec, tt.pathStyle, tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Open(%q) = %v, want an error starting %q", tt.spec, err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("Open(%q) = %v, not %v", tt.spec, err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.spec, err)
			}
			checkS3Tree(t, c, tt.sub, tt.files...)
		})
	}
}

// checkS3Tree checks that the context holds the named suiteTree files (named from
// the archive's root; sub is the sub-path the context was opened at) and applies the
// .dockerignore found at its root.
func checkS3Tree(t *testing.T, c *Context, sub string, files ...string) {
	t.Helper()
	for _, name := range files {
		rel := strings.TrimPrefix(name, sub+"/")
		got, err := os.ReadFile(filepath.Join(c.Dir, rel))
		if want := suiteTree[name]; err != nil || string(got) != want.content {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want.content)
		}
	}
	excluded := "debug.log"
	if sub == "app" {
		excluded = "secret"
	}
	if !c.Excluded(excluded) {
		t.Errorf("%s is not excluded by .dockerignore %v", excluded, c.Patterns)
	}
}

func TestParseS3Spec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec, bucket, key string
		wantErr           string
	}{
		{spec: "s3://b-1/path/to/ctx.tar.gz", bucket: "b-1", key: "path/to/ctx.tar.gz"},
		{spec: "s3://my.bucket", bucket: "my.bucket", key: "context.tar.gz"},
		{spec: "s3://Old_Bucket/", bucket: "Old_Bucket", key: "context.tar.gz"},
		{spec: "s3://b-1/a?b#c%20", bucket: "b-1", key: "a?b#c%20"},
		{spec: "s3://", wantErr: `context "s3://": no bucket name`},
		{spec: "s3:///key", wantErr: `context "s3:///key": no bucket name`},
		{spec: "s3://b!/key", wantErr: `context "s3://b!/key": "b!" is not a valid bucket name`},
		{spec: "s3://ab/key", wantErr: `context "s3://ab/key": "ab" is not a valid bucket name`},
		{spec: "s3://AKIA:hunter2@bucket/key", wantErr: "an s3:// URL holds a bucket name, not credentials"},
		{spec: "s3://bucket:9000/key", wantErr: "not credentials or a port"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			bucket, key, err := parseS3Spec(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseS3Spec = %v, want an error with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q repeats the password", err)
				}
				return
			}
			if err != nil || bucket != tt.bucket || key != tt.key {
				t.Errorf("parseS3Spec = %q, %q, %v; want %q, %q", bucket, key, err, tt.bucket, tt.key)
			}
		})
	}
}

func TestCheckS3Endpoint(t *testing.T) {
	t.Parallel()
	tests := []struct{ endpoint, wantErr string }{
		{"http://127.0.0.1:9000", ""},
		{"https://s3.example.com", ""},
		{"127.0.0.1:9000", "want an http(s) URL"},
		{"ftp://host", "want an http(s) URL"},
		{"http://key:hunter2@host:9000", "credentials in the URL are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			t.Parallel()
			err := checkS3Endpoint(tt.endpoint)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("checkS3Endpoint = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

// s3ErrorAnswer builds the error the SDK returns for an S3 error answer.
func s3ErrorAnswer(status int, code string) error {
	resp := &http.Response{StatusCode: status, Header: http.Header{}}
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: resp},
		Err:      &smithy.GenericAPIError{Code: code, Message: "answer"},
	}}
}

// TestS3ReadError covers the answers s3rver never gives: it enforces no policies
// and has one region.
func TestS3ReadError(t *testing.T) {
	t.Parallel()
	noCreds := errors.New("no EC2 IMDS role found")
	tests := []struct {
		name    string
		err     error
		credErr error
		want    string
	}{
		{"access denied, signed", s3ErrorAnswer(403, "AccessDenied"), nil,
			"context s3://b/k: access denied: the credentials in use need s3:GetObject on it: "},
		{"access denied, unsigned", s3ErrorAnswer(403, "AccessDenied"), noCreds,
			"context s3://b/k: access denied: no AWS credentials were found, so the request was unsigned; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role (no EC2 IMDS role found): "},
		{"forbidden without a code", s3ErrorAnswer(403, ""), nil, "context s3://b/k: access denied"},
		{"other region", s3ErrorAnswer(301, "PermanentRedirect"), nil,
			"context s3://b/k: the bucket is in another region: set AWS_REGION to it: "},
		{"not found without a code", s3ErrorAnswer(404, ""), nil, "context s3://b/k: not found: "},
		{"anything else", s3ErrorAnswer(500, "InternalError"), nil, "context s3://b/k: operation error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := fmt.Errorf("operation error S3: GetObject: %w", tt.err)
			got := s3ReadError("s3://b/k", "k", tt.credErr, in)
			if !strings.HasPrefix(got.Error(), tt.want) {
				t.Errorf("s3ReadError = %q, want it to start %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("s3ReadError = %v does not wrap %v", got, tt.err)
			}
		})
	}
}

// TestS3Region checks the region handling against a hand-written fake of S3's
// region answers (s3rver has one region and never redirects): a bucket-region
// question answered by a 301 naming the region, and a GetObject signed for the wrong
// region redirected to the right one.
func TestS3Region(t *testing.T) {
	t.Parallel()
	const home = "eu-west-3"
	var body bytes.Buffer
	writeSuiteTar(t, &body)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(s3RegionHeader, home)
		auth := r.Header.Get("Authorization")
		switch {
		case r.Method == http.MethodHead && r.URL.Path == "/b":
			w.WriteHeader(http.StatusMovedPermanently)
		case r.Method == http.MethodGet && r.URL.Path == "/b/k" && strings.Contains(auth, "/"+home+"/s3/"):
			_, _ = w.Write(body.Bytes())
		default:
			w.WriteHeader(http.StatusMovedPermanently)
			_, _ = fmt.Fprint(w, `<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>`)
		}
	}))
	defer fake.Close()
	c := CloudOptions{S3Endpoint: fake.URL, S3ForcePathStyle: true}
	cfg := aws.Config{Credentials: aws.NewCredentialsCache(staticS3Creds{}), Region: "us-east-1"}

	region, err := s3BucketRegion(context.Background(), cfg, c, "b")
	if err != nil || region != home {
		t.Errorf("s3BucketRegion = %q, %v; want %q", region, err, home)
	}
	rc, err := s3GetObject(context.Background(), cfg, c, "b", "k")
	if err != nil {
		t.Fatalf("s3GetObject after a redirect: %v", err)
	}
	rc.Close()
}

// staticS3Creds signs the fake's requests, so their Authorization header names the
// region they were signed for.
type staticS3Creds struct{}

func (staticS3Creds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET", Source: "test"}, nil
}
