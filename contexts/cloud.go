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
