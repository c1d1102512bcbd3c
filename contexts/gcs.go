package contexts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
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
// The object is read with one GET of Cloud Storage's JSON API (alt=media), not with
// the Cloud Storage SDK: the SDK's packages (gRPC, OpenTelemetry, protobuf registries)
// cost ~25 MB of memory at program start, in every kiln process, for a call that is a
// plain download. Credentials are Google's application defaults, found as the SDK finds
// them: GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default file, or the
// metadata server (workload identity). With CloudOptions.GCSEndpoint or
// STORAGE_EMULATOR_HOST set (the SDK's variable, honoured the same way), requests go
// there without authentication, since emulators neither need nor check it.
func fromGCS(ctx context.Context, spec, dir string, s openSettings) (*Context, error) {
	bucket, object, err := parseGCSSpec(spec)
	if err != nil {
		return nil, err
	}
	what := "gs://" + bucket + "/" + object
	base, client, err := gcsClient(ctx, s.cloud.GCSEndpoint, s.net.Client())
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", what, err)
	}
	u := base + "b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(object) + "?alt=media"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", what, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, gcsReadError(what, object, &gcsStatusError{Code: resp.StatusCode, Status: resp.Status, Body: string(msg)})
	}
	return objectContext(ctx, what, resp.Body, dir, s)
}

// gcsReadOnlyScope is the OAuth scope an object download needs.
const gcsReadOnlyScope = "https://www.googleapis.com/auth/devstorage.read_only"

// gcsClient returns the JSON API's base URL and the client to call it with, on hc's
// transport: an emulator's, unauthenticated (hc itself), when one is named; else Cloud Storage's, with Google's
// application-default credentials.
func gcsClient(ctx context.Context, endpoint string, hc *http.Client) (string, *http.Client, error) {
	if endpoint == "" {
		endpoint = os.Getenv("STORAGE_EMULATOR_HOST")
	}
	if endpoint != "" {
		base, err := gcsJSONEndpoint(endpoint)
		return base, hc, err
	}
	// oauth2 takes its base client, for the token exchange and the download, from
	// the context.
	client, err := google.DefaultClient(context.WithValue(ctx, oauth2.HTTPClient, hc), gcsReadOnlyScope)
	if err != nil {
		return "", nil, fmt.Errorf("finding Google credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default login or the metadata server): %w", err)
	}
	return "https://storage.googleapis.com/storage/v1/", client, nil
}

// errGCSNoObject matches (errors.Is) a Cloud Storage answer that the object or its
// bucket does not exist.
var errGCSNoObject = errors.New("no such object")

// gcsStatusError is a Cloud Storage answer other than 200: its status and the start of
// its body (the service's explanation; it never holds the caller's token).
type gcsStatusError struct {
	Code   int
	Status string
	Body   string
}

func (e *gcsStatusError) Error() string {
	if b := strings.TrimSpace(e.Body); b != "" {
		return "Cloud Storage answered " + e.Status + ": " + b
	}
	return "Cloud Storage answered " + e.Status
}

// Is makes a 404 match errGCSNoObject.
func (e *gcsStatusError) Is(target error) bool {
	return target == errGCSNoObject && e.Code == http.StatusNotFound
}

// parseGCSSpec splits gs://bucket[/object] into its bucket and object names.
func parseGCSSpec(spec string) (bucket, object string, err error) {
	return parseBucketSpec(spec, "gs", gcsDefaultObject, validGCSBucket,
		"credentials come from GOOGLE_APPLICATION_CREDENTIALS or the metadata server")
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

// gcsJSONEndpoint turns an emulator address as users write it (host:port,
// http://host:port, or a full .../storage/v1/ URL) into the JSON API's base URL.
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

// gcsReadError explains why an object could not be read, keeping the answer for
// errors.Is and errors.As.
func gcsReadError(what, object string, err error) error {
	var hint string
	var serr *gcsStatusError
	switch {
	case errors.Is(err, errGCSNoObject):
		hint = "no such object (or no such bucket)"
		if strings.HasSuffix(object, "/") {
			hint += "; a gs:// context names one archive object, not a directory"
		}
	case errors.As(err, &serr) && (serr.Code == http.StatusUnauthorized || serr.Code == http.StatusForbidden):
		hint = "permission denied: the credentials (GOOGLE_APPLICATION_CREDENTIALS, or the metadata server's service account) need storage.objects.get on the bucket"
	default:
		return fmt.Errorf("context %s: %w", what, err)
	}
	return fmt.Errorf("context %s: %s: %w", what, hint, err)
}
