package contexts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// gcsDefaultObject is the object a bucket-only gs:// spec names, as in kaniko, whose
// own build-context uploads put the archive there.
const gcsDefaultObject = "context.tar.gz"

// fromGCS downloads the archive object a gs://bucket/object spec names and extracts
// it into dir as it streams in: no temporary copy of the archive touches the disk.
//
// As in kaniko, gs://bucket and gs://bucket/ mean the object context.tar.gz, and the
// object is one archive: a spec ending in "/" is not a directory prefix whose objects
// are fetched one by one (kaniko tries to read an object called "dir/" too, and fails
// the same way). Unlike kaniko, which accepts only gzip, the archive may be plain or
// compressed with anything FromArchive sniffs.
//
// Credentials are the SDK's defaults: GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// application-default file, or the metadata server (workload identity). With
// CloudOptions.GCSEndpoint or STORAGE_EMULATOR_HOST set, requests go there without
// authentication, since emulators neither need nor check it.
func fromGCS(ctx context.Context, spec, dir string, s openSettings) (*Context, error) {
	bucket, object, err := parseGCSSpec(spec)
	if err != nil {
		return nil, err
	}
	what := "gs://" + bucket + "/" + object
	opts, err := gcsClientOptions(s.cloud.GCSEndpoint)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", what, err)
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("context %s: Cloud Storage client: %w", what, err)
	}
	defer client.Close()
	r, err := client.Bucket(bucket).Object(object).NewReader(ctx)
	if err != nil {
		return nil, gcsReadError(what, object, err)
	}
	defer r.Close()
	return objectContext(ctx, what, r, dir, s)
}

// parseGCSSpec splits gs://bucket[/object] into its bucket and object names.
func parseGCSSpec(spec string) (bucket, object string, err error) {
	rest, ok := strings.CutPrefix(spec, "gs://")
	if !ok {
		return "", "", fmt.Errorf("context %q: not a gs:// URL", spec)
	}
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("context %q: no bucket name (want gs://bucket/path/to/context.tar.gz)", spec)
	}
	if strings.ContainsAny(bucket, "@:") {
		// a userinfo part or a port: never a bucket name, and perhaps a secret, which
		// the message must not repeat
		return "", "", errors.New("context gs://...: a gs:// URL holds a bucket name, not credentials or a port; credentials come from GOOGLE_APPLICATION_CREDENTIALS or the metadata server")
	}
	if !validGCSBucket(bucket) {
		return "", "", fmt.Errorf("context %q: %q is not a valid bucket name", spec, bucket)
	}
	if object == "" {
		object = gcsDefaultObject
	}
	return bucket, object, nil
}

// validGCSBucket checks the characters Cloud Storage allows in a bucket name
// (lowercase letters, digits, '-', '_' and '.'), so a typo fails here, naming the
// spec, rather than as an opaque 400 from the service.
func validGCSBucket(b string) bool {
	if len(b) < 3 || len(b) > 222 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// gcsClientOptions returns the SDK options for an endpoint override: that endpoint,
// without authentication. Without one the SDK chooses (STORAGE_EMULATOR_HOST, else
// storage.googleapis.com with default credentials).
func gcsClientOptions(endpoint string) ([]option.ClientOption, error) {
	if endpoint == "" {
		return nil, nil
	}
	ep, err := gcsJSONEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	return []option.ClientOption{option.WithEndpoint(ep), option.WithoutAuthentication()}, nil
}

// gcsJSONEndpoint turns an emulator address as users write it (host:port,
// http://host:port, or a full .../storage/v1/ URL) into the JSON API base URL the SDK
// wants; object reads use the same scheme and host.
func gcsJSONEndpoint(endpoint string) (string, error) {
	raw := endpoint
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("the Cloud Storage endpoint %q: want host:port or an http(s) URL", endpoint)
	}
	if u.User != nil {
		return "", errors.New("the Cloud Storage endpoint: credentials in the URL are not supported")
	}
	if p := strings.Trim(u.Path, "/"); p == "" {
		u.Path = "/storage/v1/"
	} else {
		u.Path = "/" + p + "/"
	}
	return u.String(), nil
}

// gcsReadError explains why an object could not be opened, keeping the SDK's error
// for errors.Is and errors.As. Neither the SDK's errors nor these carry the access
// token: it travels in a request header, which no error message includes.
func gcsReadError(what, object string, err error) error {
	var hint string
	var gerr *googleapi.Error
	switch {
	case errors.Is(err, storage.ErrObjectNotExist), errors.Is(err, storage.ErrBucketNotExist):
		hint = "no such object (or no such bucket)"
		if strings.HasSuffix(object, "/") {
			hint += "; a gs:// context names one archive object, not a directory"
		}
	case errors.As(err, &gerr) && (gerr.Code == http.StatusUnauthorized || gerr.Code == http.StatusForbidden):
		hint = "permission denied: the credentials (GOOGLE_APPLICATION_CREDENTIALS, or the metadata server's service account) need storage.objects.get on the bucket"
	default:
		return fmt.Errorf("context %s: %w", what, err)
	}
	return fmt.Errorf("context %s: %s: %w", what, hint, err)
}
