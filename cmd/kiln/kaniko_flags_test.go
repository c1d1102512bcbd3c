package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// kanikoFlag is one flag of kaniko's executor or warmer (kaniko v1.24's
// cmd/executor/cmd/root.go and cmd/warmer/cmd/root.go, and the executor flags its
// maintained fork chainguard-dev/kaniko added): its name and shorthand.
// deprecated marks kaniko's old spellings, which kiln accepts hidden from the flag
// list and names in the command's description instead.
type kanikoFlag struct {
	name, short string
	deprecated  bool
}

// kanikoExecutorFlags lists every flag of kaniko's executor.
func kanikoExecutorFlags() []kanikoFlag {
	return []kanikoFlag{
		{name: "verbosity", short: "v"}, {name: "log-format"}, {name: "log-timestamp"}, {name: "force"},
		{name: "dockerfile", short: "f"}, {name: "context", short: "c"}, {name: "context-sub-path"},
		{name: "bucket", short: "b"}, {name: "destination", short: "d"}, {name: "snapshot-mode"},
		{name: "custom-platform"}, {name: "build-arg"}, {name: "insecure"}, {name: "skip-tls-verify"},
		{name: "insecure-pull"}, {name: "skip-tls-verify-pull"}, {name: "push-retry"},
		{name: "push-ignore-immutable-tag-errors"}, {name: "image-fs-extract-retry"},
		{name: "image-download-retry"}, {name: "kaniko-dir"}, {name: "tar-path"},
		{name: "single-snapshot"}, {name: "reproducible"}, {name: "target"}, {name: "no-push"},
		{name: "no-push-cache"}, {name: "cache-repo"}, {name: "cache-dir"}, {name: "digest-file"},
		{name: "image-name-with-digest-file"}, {name: "image-name-tag-with-digest-file"},
		{name: "oci-layout-path"}, {name: "compression"}, {name: "compression-level"}, {name: "cache"},
		{name: "compressed-caching"}, {name: "cleanup"}, {name: "cache-ttl"}, {name: "insecure-registry"},
		{name: "skip-tls-verify-registry"}, {name: "registry-certificate"}, {name: "registry-client-cert"},
		{name: "registry-map"}, {name: "registry-mirror"}, {name: "skip-default-registry-fallback"},
		{name: "ignore-var-run"}, {name: "label"}, {name: "skip-unused-stages"}, {name: "use-new-run"},
		{name: "git"}, {name: "cache-copy-layers"}, {name: "cache-run-layers"}, {name: "ignore-path"},
		{name: "force-build-metadata"}, {name: "skip-push-permission-check"},
		{name: "upload-tar"}, {name: "upload-tar-retry"}, // chainguard-dev/kaniko, kaniko's maintained fork
		{name: "whitelist-var-run", deprecated: true}, {name: "snapshotMode", deprecated: true},
		{name: "customPlatform", deprecated: true}, {name: "tarPath", deprecated: true},
	}
}

// kanikoWarmerFlags lists every flag of kaniko's warmer.
func kanikoWarmerFlags() []kanikoFlag {
	return []kanikoFlag{
		{name: "verbosity", short: "v"}, {name: "log-format"}, {name: "log-timestamp"},
		{name: "image", short: "i"}, {name: "cache-dir", short: "c"}, {name: "force", short: "f"},
		{name: "cache-ttl"}, {name: "insecure-pull"}, {name: "skip-tls-verify-pull"},
		{name: "insecure-registry"}, {name: "skip-tls-verify-registry"}, {name: "registry-certificate"},
		{name: "registry-client-cert"}, {name: "registry-map"}, {name: "registry-mirror"},
		{name: "skip-default-registry-fallback"}, {name: "customPlatform", deprecated: true},
		{name: "dockerfile", short: "d"}, {name: "build-arg"},
	}
}

// kanikoEnvVar is an environment variable kaniko reads or its README tells users to
// set, and where kiln documents what it does with it: "help" (kiln build --help) or a
// file under docs/.
type kanikoEnvVar struct {
	name, where string
}

func kanikoEnvVars() []kanikoEnvVar {
	return []kanikoEnvVar{
		{name: "KANIKO_REGISTRY_MIRROR", where: "help"},
		{name: "KANIKO_REGISTRY_MAP", where: "help"},
		{name: "KANIKO_NO_PUSH", where: "help"},
		{name: "KANIKO_DIR", where: "help"},
		{name: "BUILDER_OUTPUT", where: "help"},
		{name: "DOCKER_CONFIG", where: "help"},
		{name: "GIT_TOKEN", where: "help"},
		{name: "GIT_USERNAME", where: "help"},
		{name: "GIT_PASSWORD", where: "help"},
		{name: "GIT_PULL_METHOD", where: "docs/contexts.md"},
		{name: "S3_ENDPOINT", where: "help"},
		{name: "S3_FORCE_PATH_STYLE", where: "help"},
		{name: "AZURE_STORAGE_ACCESS_KEY", where: "help"},
		{name: "GOOGLE_APPLICATION_CREDENTIALS", where: "docs/credentials.md"},
		{name: "AZURE_CLIENT_ID", where: "docs/credentials.md"},
		{name: "AZURE_CLIENT_SECRET", where: "docs/credentials.md"},
		{name: "AZURE_TENANT_ID", where: "docs/credentials.md"},
		{name: "AWS_SDK_LOAD_CONFIG", where: "docs/kaniko-flags.md"},
		{name: "AWS_EC2_METADATA_DISABLED", where: "docs/kaniko-flags.md"},
		{name: "BENCHMARK_FILE", where: "docs/kaniko-flags.md"},
		{name: "SNAPSHOT_TIMEOUT_DURATION", where: "docs/kaniko-flags.md"},
		{name: "UPSTREAM_CLIENT_TYPE", where: "docs/kaniko-flags.md"},
		{name: "STACKLOG_PATH", where: "docs/kaniko-flags.md"},
	}
}

// helpOf returns `kiln <command> --help`.
func helpOf(t *testing.T, command string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{command, "--help"}, &stdout, &stderr, fakeHost(t, false, nil)); code != 0 {
		t.Fatalf("kiln %s --help exited %d: %s", command, code, stderr.String())
	}
	return stdout.String()
}

// readDoc returns a file under the repository's docs/.
func readDoc(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// mentions reports whether text names flag as a flag, not as part of a longer one.
func mentions(text, flag string) bool {
	for _, end := range []string{" ", "\n", ",", ")", "`", "=", "."} {
		if strings.Contains(text, "--"+flag+end) {
			return true
		}
	}
	return false
}

func TestKanikoFlagsAreKnown(t *testing.T) {
	t.Parallel()
	h := fakeHost(t, false, nil)
	commands := []struct {
		name  string
		cmd   *cobra.Command
		flags []kanikoFlag
	}{
		{"build", newBuildCommand(nil, nil, h), kanikoExecutorFlags()},
		{"warm", newWarmCommand(nil, h), kanikoWarmerFlags()},
	}
	doc := readDoc(t, "docs/kaniko-flags.md")
	for _, c := range commands {
		help := helpOf(t, c.name)
		for _, k := range c.flags {
			fl := c.cmd.Flags().Lookup(k.name)
			if fl == nil {
				t.Errorf("kiln %s has no --%s (kaniko's)", c.name, k.name)
				continue
			}
			if fl.Shorthand != k.short {
				t.Errorf("kiln %s --%s: shorthand %q, kaniko's is %q", c.name, k.name, fl.Shorthand, k.short)
			}
			if k.short != "" && !strings.Contains(help, "-"+k.short+", --"+k.name+" ") {
				t.Errorf("kiln %s --help does not list -%s, --%s", c.name, k.short, k.name)
			}
			if !mentions(help, k.name) {
				t.Errorf("kiln %s --help does not mention --%s", c.name, k.name)
			}
			if !mentions(doc, k.name) {
				t.Errorf("docs/kaniko-flags.md does not map kaniko's --%s", k.name)
			}
		}
	}
}

func TestKanikoEnvVarsAreDocumented(t *testing.T) {
	t.Parallel()
	help := helpOf(t, "build")
	mapping := readDoc(t, "docs/kaniko-flags.md")
	for _, v := range kanikoEnvVars() {
		t.Run(v.name, func(t *testing.T) {
			if !strings.Contains(mapping, "`"+v.name+"`") {
				t.Errorf("docs/kaniko-flags.md does not map %s", v.name)
			}
			text := help
			if v.where != "help" {
				text = readDoc(t, v.where)
			}
			if !strings.Contains(text, v.name) {
				t.Errorf("%s does not mention kaniko's %s", v.where, v.name)
			}
		})
	}
}
