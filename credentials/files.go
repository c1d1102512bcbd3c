package credentials

import "path/filepath"

// Files lists the files kiln may read credentials from, whether or not they exist: the
// docker config (and Podman's auth files) Default reads, kaniko's
// /kaniko/.docker/config.json, and the cloud SDKs' credential files and identity
// tokens the Cloud keychains read (Google application default credentials and gcloud's
// stores, AWS shared files and web identity token, Azure's federated token). lookupEnv
// reads the environment; home is the user's home directory ("" skips what lies in it).
// In-place builds hide these from RUN (see docs/security.md).
func Files(lookupEnv func(string) (string, bool), home string) []string {
	env := func(k string) string {
		v, _ := lookupEnv(k)
		return v
	}
	inHome := func(p ...string) string {
		if home == "" {
			return ""
		}
		return filepath.Join(append([]string{home}, p...)...)
	}
	orHome := func(k string, p ...string) string {
		if v := env(k); v != "" {
			return v
		}
		return inHome(p...)
	}
	var files []string
	add := func(paths ...string) {
		for _, p := range paths {
			if p != "" {
				files = append(files, p)
			}
		}
	}
	if d := env("DOCKER_CONFIG"); d != "" {
		add(filepath.Join(d, "config.json"))
	}
	add(inHome(".docker", "config.json"), "/kaniko/.docker/config.json", env("REGISTRY_AUTH_FILE"))
	if d := env("XDG_RUNTIME_DIR"); d != "" {
		add(filepath.Join(d, "containers", "auth.json"))
	}
	if d := orHome("XDG_CONFIG_HOME", ".config"); d != "" {
		add(filepath.Join(d, "containers", "auth.json"))
	}
	add(env("GOOGLE_APPLICATION_CREDENTIALS"))
	if d := orHome("CLOUDSDK_CONFIG", ".config", "gcloud"); d != "" {
		add(filepath.Join(d, "application_default_credentials.json"),
			filepath.Join(d, "credentials.db"), filepath.Join(d, "access_tokens.db"))
	}
	add(orHome("AWS_SHARED_CREDENTIALS_FILE", ".aws", "credentials"), orHome("AWS_CONFIG_FILE", ".aws", "config"),
		env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AZURE_FEDERATED_TOKEN_FILE"))
	return files
}
