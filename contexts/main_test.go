package contexts

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain keeps the package's tests away from real clouds whoever runs them: the AWS
// SDK must not probe the instance-metadata service (a link-local address, not
// loopback), and a developer's own AWS credentials must not sign requests to the test
// S3 server. Tests that want credentials set them with t.Setenv.
func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		os.Unsetenv(k)
	}
	none := filepath.Join(os.TempDir(), "kiln-contexts-test-no-aws-config")
	os.Setenv("AWS_CONFIG_FILE", none)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	os.Exit(m.Run())
}
