package contexts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/kiln-build/kiln/nettimeout"
)

// s3DefaultObject is the object a bucket-only s3:// spec names, as in kaniko.
const s3DefaultObject = "context.tar.gz"

// s3FallbackRegion is the region requests are signed for when none is configured:
// S3-compatible stores accept it (most ignore the region), and AWS answers a
// bucket-region question sent there for any bucket.
const s3FallbackRegion = "us-east-1"

// s3CredentialsTimeout bounds the search for credentials. With nothing configured
// the SDK's chain ends at the EC2 instance metadata service, which off EC2 answers
// nothing at all; the build then proceeds unsigned rather than waiting on it.
// Credential processes and SSO refreshes finish well within it.
const s3CredentialsTimeout = 10 * time.Second

// s3RegionHeader is where S3 names a bucket's region, even in 301 and 403 answers.
const s3RegionHeader = "X-Amz-Bucket-Region"

// fromS3 downloads the archive object an s3://bucket/key spec names and extracts it
// into dir as it streams in: no temporary copy of the archive touches the disk.
//
// As in kaniko, s3://bucket and s3://bucket/ mean the object context.tar.gz, and the
// object is one archive, plain or compressed with anything FromArchive sniffs.
//
// Configuration is the SDK's default chain: AWS_* variables, ~/.aws/config and
// credentials (AWS_PROFILE), web identity, container and instance roles. When that
// chain finds no credentials the request goes unsigned, which public buckets and
// open S3-compatible stores accept. The region is the configured one; without one, it
// is us-east-1 for an endpoint override and otherwise the bucket's own, which S3 tells
// anyone who asks (kaniko fails here instead).
func fromS3(ctx context.Context, spec, dir string, s openSettings) (*Context, error) {
	bucket, key, err := parseS3Spec(spec)
	if err != nil {
		return nil, err
	}
	what := "s3://" + bucket + "/" + key
	cfg, credErr, err := s3Config(ctx, s.cloud, s.net)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", what, err)
	}
	if cfg.Region == "" {
		region, err := s3BucketRegion(ctx, cfg, s.cloud, bucket)
		if err != nil {
			return nil, s3ReadError(what, key, credErr,
				fmt.Errorf("no AWS region is configured (AWS_REGION) and the bucket's region could not be found: %w", err))
		}
		cfg.Region = region
	}
	body, err := s3GetObject(ctx, cfg, s.cloud, bucket, key)
	if err != nil {
		return nil, s3ReadError(what, key, credErr, err)
	}
	defer body.Close()
	return objectContext(ctx, what, body, dir, s)
}

// parseS3Spec splits s3://bucket[/key] into its bucket and key. The key is taken
// literally, as the AWS CLI does: S3 keys may hold '?', '#' and '%'.
func parseS3Spec(spec string) (bucket, key string, err error) {
	return parseBucketSpec(spec, "s3", s3DefaultObject, validS3Bucket,
		"credentials come from AWS_* variables, ~/.aws files or an instance role, and S3-compatible stores are reached with S3_ENDPOINT")
}

// validS3Bucket checks the characters bucket names are made of. It is looser than
// AWS's current rules (which forbid upper case and '_'), because old us-east-1
// buckets and S3-compatible stores use them; the point is a clear error for a typo.
func validS3Bucket(b string) bool {
	if len(b) < 3 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// s3Config loads the SDK's default configuration and settles its credentials now, so
// that an empty chain means unsigned requests rather than a wait on every call. It
// returns why no credentials were found (nil when some were), for error messages.
func s3Config(ctx context.Context, c CloudOptions, nl nettimeout.Limits) (cfg aws.Config, credErr error, err error) {
	if c.S3Endpoint != "" {
		if err := checkS3Endpoint(c.S3Endpoint); err != nil {
			return aws.Config{}, nil, err
		}
	}
	// The credential providers (instance metadata at 169.254.169.254, STS, SSO) are
	// the server's own and keep an unguarded client; only the bucket's requests,
	// which go where the client's URL points, are held to the fetch guard.
	unguarded := nl.Guarded(nil)
	hc := awshttp.NewBuildableClient().WithTransportOptions(unguarded.Apply)
	cfg, err = config.LoadDefaultConfig(ctx, config.WithHTTPClient(hc))
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if nl.Guard != nil {
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(nl.Apply)
	}
	if cfg.Region == "" && (c.S3Endpoint != "" || cfg.BaseEndpoint != nil) {
		cfg.Region = s3FallbackRegion
	}
	if cfg.Credentials == nil {
		cfg.Credentials = aws.AnonymousCredentials{}
		return cfg, errors.New("no credential source is configured"), nil
	}
	rctx, cancel := context.WithTimeout(ctx, s3CredentialsTimeout)
	defer cancel()
	if _, credErr = cfg.Credentials.Retrieve(rctx); credErr != nil {
		if ctx.Err() != nil {
			return aws.Config{}, nil, ctx.Err()
		}
		cfg.Credentials = aws.AnonymousCredentials{}
	}
	return cfg, credErr, nil
}

// checkS3Endpoint rejects endpoint overrides the SDK would misread, without echoing
// one that carries credentials.
func checkS3Endpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("the S3 endpoint %q: want an http(s) URL such as http://127.0.0.1:9000", endpoint)
	}
	if u.User != nil {
		return errors.New("the S3 endpoint: credentials in the URL are not supported; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return nil
}

// s3Options applies the endpoint override and addressing style, and region when set.
func s3Options(c CloudOptions, region string) func(*s3.Options) {
	return func(o *s3.Options) {
		if c.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(c.S3Endpoint)
		}
		if c.S3ForcePathStyle {
			o.UsePathStyle = true
		}
		if region != "" {
			o.Region = region
		}
		// S3-compatible stores rarely return checksums; the SDK would log that it
		// skipped validating each download
		o.DisableLogOutputChecksumValidationSkipped = true
	}
}

// s3BucketRegion asks S3 where bucket lives. The question goes unsigned to us-east-1,
// which answers with the X-Amz-Bucket-Region header for any bucket, even one it
// refuses to describe (403) or that lives elsewhere (301).
func s3BucketRegion(ctx context.Context, cfg aws.Config, c CloudOptions, bucket string) (string, error) {
	client := s3.NewFromConfig(cfg, s3Options(c, s3FallbackRegion), func(o *s3.Options) {
		o.Credentials = aws.AnonymousCredentials{}
	})
	out, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil && out.BucketRegion != nil && *out.BucketRegion != "" {
		return *out.BucketRegion, nil
	}
	if region := regionFromError(err); region != "" {
		return region, nil
	}
	if err == nil {
		err = fmt.Errorf("S3 did not say which region bucket %q is in", bucket)
	}
	return "", err
}

// s3GetObject opens the object for reading. When S3 answers that the bucket lives in
// another region than the configured one, it asks there once more.
func s3GetObject(ctx context.Context, cfg aws.Config, c CloudOptions, bucket, key string) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	out, err := s3.NewFromConfig(cfg, s3Options(c, "")).GetObject(ctx, in)
	if region := regionFromError(err); region != "" && region != cfg.Region {
		out, err = s3.NewFromConfig(cfg, s3Options(c, region)).GetObject(ctx, in)
	}
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// regionFromError returns the bucket region an S3 error answer named, if any.
func regionFromError(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil {
		return re.Response.Header.Get(s3RegionHeader)
	}
	return ""
}

// s3ReadError explains why an object could not be read, keeping the SDK's error for
// errors.Is and errors.As. Neither carries credentials: signatures travel in request
// headers, which no error message includes.
func s3ReadError(what, key string, credErr, err error) error {
	var apiErr smithy.APIError
	var noKey *types.NoSuchKey
	var noBucket *types.NoSuchBucket
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var hint string
	switch {
	case errors.As(err, &noKey) || code == "NoSuchKey":
		hint = "no such object"
		if strings.HasSuffix(key, "/") {
			hint += "; an s3:// context names one archive object, not a directory"
		}
		if key == s3DefaultObject {
			hint += " (an s3:// URL without a key names the object " + s3DefaultObject + ")"
		}
	case errors.As(err, &noBucket) || code == "NoSuchBucket":
		hint = "no such bucket"
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		hint = "the AWS credentials were rejected"
	case code == "AccessDenied" || code == "AllAccessDisabled" || s3Status(err) == http.StatusForbidden:
		hint = "access denied: the credentials in use need s3:GetObject on it"
		if credErr != nil {
			hint = "access denied: no AWS credentials were found, so the request was unsigned; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role (" + credErr.Error() + ")"
		}
	case code == "PermanentRedirect" || s3Status(err) == http.StatusMovedPermanently:
		hint = "the bucket is in another region: set AWS_REGION to it"
	case s3Status(err) == http.StatusNotFound:
		hint = "not found"
	default:
		return fmt.Errorf("context %s: %w", what, err)
	}
	return fmt.Errorf("context %s: %s: %w", what, hint, err)
}

// s3Status is the HTTP status of an S3 error answer, or 0.
func s3Status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
