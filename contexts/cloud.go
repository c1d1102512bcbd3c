package contexts

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// CloudOptions configure the bucket sources. Credentials are not here: each cloud's
// SDK finds them itself, in the standard places its users already fill (AWS_* variables
// and ~/.aws files, GOOGLE_APPLICATION_CREDENTIALS and workload identity,
// AZURE_STORAGE_ACCESS_KEY), which the CLI passes through from its environment.
type CloudOptions struct {
	// S3Endpoint overrides the S3 endpoint, for S3-compatible stores (kaniko's
	// S3_ENDPOINT), e.g. http://127.0.0.1:9000.
	S3Endpoint string
	// S3ForcePathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key (kaniko's S3_FORCE_PATH_STYLE), as most S3-compatible
	// stores need.
	S3ForcePathStyle bool
	// GCSEndpoint overrides the Cloud Storage endpoint (an emulator's address); the
	// SDK also honours STORAGE_EMULATOR_HOST on its own.
	GCSEndpoint string
	// AzureBlobEndpoints are extra blob service endpoints, beyond
	// https://ACCOUNT.blob.core.windows.net, whose URLs are Azure Blob contexts: for
	// Azurite, http://127.0.0.1:10000/devstoreaccount1.
	AzureBlobEndpoints []string
	// AzureAccessKey is the storage account key (AZURE_STORAGE_ACCESS_KEY).
	AzureAccessKey string
}

// objectContext extracts a downloaded archive object into dir with the limits the
// caller gave, naming the object in errors.
func objectContext(ctx context.Context, what string, r io.Reader, dir string, s openSettings) (*Context, error) {
	c, err := FromArchive(ctx, r, dir, s.archive...)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", what, err)
	}
	return c, nil
}

// IsBucketURL reports whether spec names an archive in a bucket: s3://, gs://, or an
// Azure Blob URL (of Azure's endpoints or of o.AzureBlobEndpoints).
func (o CloudOptions) IsBucketURL(spec string) bool {
	return strings.HasPrefix(spec, "s3://") || strings.HasPrefix(spec, "gs://") || o.IsAzureBlobURL(spec)
}

// FromBucket downloads the archive spec names (s3://bucket/key, gs://bucket/object or
// an Azure Blob URL) and extracts it into dir as FromArchive does, with its limits. The
// download streams into the extraction: nothing is staged on disk, and WithMaxBytes
// stops a decompression bomb at the limit.
func FromBucket(ctx context.Context, spec, dir string, o CloudOptions, opts ...ArchiveOption) (*Context, error) {
	s := openSettings{cloud: o, archive: opts}
	var as archiveSettings
	for _, opt := range opts {
		opt(&as)
	}
	s.net = as.net
	switch {
	case strings.HasPrefix(spec, "s3://"):
		return fromS3(ctx, spec, dir, s)
	case strings.HasPrefix(spec, "gs://"):
		return fromGCS(ctx, spec, dir, s)
	case o.IsAzureBlobURL(spec):
		return fromAzureBlob(ctx, spec, dir, s)
	}
	return nil, fmt.Errorf("context %q: not a bucket URL (s3://, gs:// or Azure Blob)", spec)
}

// parseBucketSpec splits scheme://bucket[/object] into its bucket and object; a spec
// naming only the bucket means defaultObject, as in kaniko. A bucket part holding "@"
// or ":" (credentials, a port) is refused without repeating it, since it may be a
// secret; credHint says where the scheme's credentials come from instead.
func parseBucketSpec(spec, scheme, defaultObject string, valid func(string) bool, credHint string) (bucket, object string, err error) {
	rest, ok := strings.CutPrefix(spec, scheme+"://")
	if !ok {
		return "", "", fmt.Errorf("context %q: not a %s:// URL", spec, scheme)
	}
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("context %q: no bucket name (want %s://bucket/path/to/context.tar.gz)", spec, scheme)
	}
	if strings.ContainsAny(bucket, "@:") {
		// "an s3:// URL", "a gs:// URL": the article follows the letter's spoken name
		article := "a"
		if strings.ContainsRune("aefhilmnorsx", rune(scheme[0])) {
			article = "an"
		}
		return "", "", fmt.Errorf("context %s://...: %s %s:// URL holds a bucket name, not credentials or a port; %s", scheme, article, scheme, credHint)
	}
	if !valid(bucket) {
		return "", "", fmt.Errorf("context %q: %q is not a valid bucket name", spec, bucket)
	}
	if object == "" {
		object = defaultObject
	}
	return bucket, object, nil
}
