package credentials

import (
	"slices"
	"testing"
)

func TestFiles(t *testing.T) {
	env := map[string]string{
		"DOCKER_CONFIG":                  "/kiln/.docker",
		"GOOGLE_APPLICATION_CREDENTIALS": "/var/run/gcp/key.json",
		"AWS_WEB_IDENTITY_TOKEN_FILE":    "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
		"AZURE_FEDERATED_TOKEN_FILE":     "/var/run/secrets/azure/tokens/azure-identity-token",
		"AWS_CONFIG_FILE":                "/etc/aws/config",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got := Files(lookup, "/root")
	for _, want := range []string{
		"/kiln/.docker/config.json", "/root/.docker/config.json", "/kaniko/.docker/config.json",
		"/root/.config/containers/auth.json", "/var/run/gcp/key.json",
		"/root/.config/gcloud/application_default_credentials.json", "/root/.aws/credentials", "/etc/aws/config",
		"/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "/var/run/secrets/azure/tokens/azure-identity-token",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("Files lacks %s: %q", want, got)
		}
	}
	if slices.Contains(got, "/root/.aws/config") {
		t.Errorf("AWS_CONFIG_FILE set, yet ~/.aws/config listed: %q", got)
	}
	if slices.Contains(got, "") {
		t.Errorf("empty path listed: %q", got)
	}
	if got := Files(func(string) (string, bool) { return "", false }, ""); !slices.Equal(got, []string{"/kaniko/.docker/config.json"}) {
		t.Errorf("no environment, no home: %q", got)
	}
}
