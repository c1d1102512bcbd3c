package testworld

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3AccessKey and S3SecretKey are the credentials s3rver accepts out of the box.
const (
	S3AccessKey = "S3RVER"
	S3SecretKey = "S3RVER"
)

// s3rverStartTimeout bounds how long a fresh s3rver (a Node process) may take to answer.
const s3rverStartTimeout = 30 * time.Second

// S3Server is an S3-compatible server (s3rver, from npm) a test started on loopback.
type S3Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT: the S3 endpoint
	// override, addressed path-style (endpoint/bucket/key).
	Endpoint string
	client   *s3.Client
}

// S3 starts s3rver on a free loopback port with its data in a t.TempDir(), and stops it
// (killing the process group it started) when the test ends. s3rver is looked up under
// $KILN_WORLD/npm/node_modules/.bin (default /var/tmp/kiln-world), where world.sh
// installs it, then on PATH; without it the test skips (fails when
// KILN_TEST_WORLD_REQUIRED=1).
func S3(t testing.TB) *S3Server {
	t.Helper()
	if testing.Short() {
		t.Skip("testworld: S3 tests do not run with -short")
		return nil
	}
	bin, err := findWorldBinary("npm/node_modules/.bin", "s3rver")
	if err != nil {
		unavailable(t, required(), "testworld: %v, or npm install s3rver", err)
		return nil
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	startEmulator(t, "s3rver", bin, []string{"--address", "127.0.0.1", "--port", strconv.Itoa(port),
		"--directory", t.TempDir(), "--silent"},
		httpProbe(endpoint+"/", anyStatus), s3rverStartTimeout)
	return &S3Server{Endpoint: endpoint, client: newS3TestClient(endpoint)}
}

// CreateBucket creates bucket on the server.
func (s *S3Server) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("testworld: creating bucket %s: %v", bucket, err)
	}
}

// Put stores data as bucket/key and reads it back, failing the test unless the same
// bytes return: an upload an old server mangled (aws-chunked framing, say) would
// otherwise surface as a baffling extraction error in the test using it.
func (s *S3Server) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatalf("testworld: putting s3://%s/%s: %v", bucket, key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("testworld: reading back s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("testworld: reading back s3://%s/%s: %v", bucket, key, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("testworld: s3://%s/%s: stored %d bytes, read back %d different ones", bucket, key, len(data), len(got))
	}
}

// SetEnv points the AWS SDK's default configuration chain at this server's
// credentials and nothing else: S3AccessKey/S3SecretKey in the environment, no shared
// config or credential files, no profile, no region, and no EC2 instance metadata
// lookups (which would leave the machine). Tests that want anonymous access set
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to "" afterwards. Like t.Setenv, it
// cannot be used in parallel tests; their parallel subtests may share it.
func (s *S3Server) SetEnv(t testing.TB) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "absent")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":                      S3AccessKey,
		"AWS_SECRET_ACCESS_KEY":                  S3SecretKey,
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_DEFAULT_PROFILE":                    "",
		"AWS_REGION":                             "",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_CONFIG_FILE":                        none,
		"AWS_SHARED_CREDENTIALS_FILE":            none,
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_S3":                    "",
	} {
		t.Setenv(k, v)
	}
}

// newS3TestClient makes the client the helper uploads with: static credentials,
// path-style addressing, and checksums only where S3 requires them, since the SDK's
// default aws-chunked uploads with trailing checksums are newer than s3rver.
func newS3TestClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}
