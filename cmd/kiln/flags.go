package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/fetchpolicy"
)

// buildFlags holds the values of kiln build's flags as the user gave them. Names,
// shorthands and defaults follow kaniko's executor so kaniko invocations keep working;
// planBuild turns them into a build.
type buildFlags struct {
	// Input.
	context    string
	dockerfile string
	buildArgs  []string
	secrets    []string
	ssh        []string
	knownHosts string // --ssh-known-hosts
	labels     []string
	target     string
	platform   string

	// Context sources: kaniko's --context-sub-path, --git and --bucket.
	bucket         string
	contextSubPath string
	git            string
	maxContextSize string

	// Outputs.
	destinations           []string
	noPush                 bool
	tarPath                string
	ociLayoutPath          string
	digestFile             string
	imageNameDigestFile    string
	imageNameTagDigestFile string

	// Registries.
	insecure                bool
	insecurePull            bool
	insecureRegistries      []string
	skipTLSVerify           bool
	skipTLSVerifyPull       bool
	skipTLSVerifyRegistries []string
	pushRetry               int
	imageDownloadRetry      int
	imageFSExtractRetry     int
	// kaniko's push checks: before the build, and of immutable tags after it.
	skipPushPermissionCheck      bool
	pushIgnoreImmutableTagErrors bool
	// Mirrors, per-registry CAs and client certificates (docs/registries.md).
	registryFlags
	fetchFlags

	// Build behaviour.
	reproducible     bool
	skipUnusedStages bool
	snapshotMode     string
	// Layer compression: gzip or zstd, and the compressor's level (-1 its default).
	compression      string
	compressionLevel int
	singleSnapshot   bool
	// useNewRun is kaniko's --use-new-run: accepted, and a no-op (see runBuild).
	useNewRun    bool
	ignorePaths  []string
	ignoreVarRun bool
	cleanup      bool

	// The base-image cache (kaniko's --cache-dir, filled by builds and kiln warm).
	cacheDir string
	// The step cache (kaniko's --cache, --cache-repo, ...) and --cache-report.
	cacheFlags

	// Where and how the build runs (kiln's own flags, plus kaniko's --force).
	isolation string
	seccomp   string
	inPlaceNS string // --inplace-namespaces
	stateDir  string
	force     bool
	// entitlements are --allow-insecure-entitlement values (see allowInsecure).
	entitlements []string
	// kanikoDir is kaniko's --kaniko-dir (or KANIKO_DIR): where kiln's own files go
	// when --state-dir is not given, and a path in-place builds leave alone.
	kanikoDir string

	// flagWarnings are what checking the flags had to say (empty values dropped); the
	// command logs them once its log exists.
	flagWarnings []string

	// Logging.
	verbosity    string
	logFormat    string
	logTimestamp bool
	phaseTimes   bool // --phase-times: the per-phase breakdown at info level

	limits limitFlags // --build-memory, --build-pids, --build-timeout
}

// addBuildFlags registers kiln build's flags on fs, bound to f.
func addBuildFlags(fs *pflag.FlagSet, f *buildFlags) {
	fs.StringVarP(&f.context, "context", "c", "/workspace/", "The build context: a directory, dir://<directory>, tar://<archive>[.gz|.bz2|.xz|.zst], tar://stdin, or a git repository (git://host/repo.git#refs/heads/branch#commit, fetched over https, or http with GIT_PULL_METHOD=http; https://host/repo.git#ref; GIT_TOKEN or GIT_USERNAME/GIT_PASSWORD authenticate), or an archive in a bucket: s3://bucket/key (S3_ENDPOINT, S3_FORCE_PATH_STYLE for S3-compatible stores), gs://bucket/object, https://account.blob.core.windows.net/container/blob (AZURE_STORAGE_ACCESS_KEY).")
	fs.StringVar(&f.maxContextSize, "max-context-size", "", "Largest context a tar://, git or bucket source may unpack to (counted uncompressed): bytes or a size such as 512MiB or 4GiB. Unlimited by default; a directory context is used in place and never limited.")
	fs.StringVar(&f.contextSubPath, "context-sub-path", "", "Sub-directory of the context to build from (it must be inside the context).")
	fs.StringVar(&f.git, "git", "", "Git clone options: branch=NAME,single-branch=BOOL,recurse-submodules=BOOL,insecure-skip-tls=BOOL.")
	fs.StringVarP(&f.dockerfile, "dockerfile", "f", "Dockerfile", "Path to the Dockerfile to build: absolute, or relative to the context (a path relative to the working directory is tried when the context has none).")
	fs.StringArrayVar(&f.buildArgs, "build-arg", nil, "Build-time variable, KEY=VALUE, or KEY alone to take the value from the environment (skipped when unset). Repeat for several.")
	fs.StringArrayVar(&f.secrets, "secret", nil, "Secret for RUN --mount=type=secret, as buildx takes it: id=ID,src=PATH (a file) or id=ID,env=VARIABLE (type=file|env also accepted; id=ID alone reads the variable ID if set, else the file ID). Never stored in the image. Repeat for several.")
	fs.StringArrayVar(&f.ssh, "ssh", nil, "SSH agent for RUN --mount=type=ssh, as buildx takes it: default (the agent at $SSH_AUTH_SOCK), ID=/path/to/agent.sock, or ID=/path/to/key[,key...] (unencrypted private keys). Repeat for several.")
	fs.StringVar(&f.knownHosts, "ssh-known-hosts", "", knownHostsUsage)
	fs.StringArrayVar(&f.labels, "label", nil, "Label for the image, KEY=VALUE (KEY alone sets an empty value). Repeat for several.")
	fs.StringVar(&f.target, "target", "", "Build stage to build; the last stage by default.")
	fs.StringVar(&f.platform, "custom-platform", "", "Platform to build for, os/arch[/variant], if different from the host's.")

	fs.StringArrayVarP(&f.destinations, "destination", "d", nil, "Image reference (registry/repository:tag) to push the image to, and to tag it with in --tar-path. Repeat for several.")
	fs.BoolVar(&f.noPush, "no-push", false, "Do not push the image to the registry.")
	fs.StringVar(&f.tarPath, "tar-path", "", "Path to save the image to as a docker-archive tarball (docker load), tagged with the destinations.")
	fs.StringVar(&f.ociLayoutPath, "oci-layout-path", "", "Path of an OCI image layout directory to save the image into (created if missing, added to otherwise).")
	fs.StringVar(&f.digestFile, "digest-file", "", "File to write the image's manifest digest (sha256:...) to.")
	fs.StringVar(&f.imageNameDigestFile, "image-name-with-digest-file", "", "File to write each destination's name with the digest to (registry/repo@sha256:..., one per line).")
	fs.StringVar(&f.imageNameTagDigestFile, "image-name-tag-with-digest-file", "", "File to write each destination's name, tag and digest to (registry/repo:tag@sha256:..., one per line).")

	fs.BoolVar(&f.insecure, "insecure", false, "Push to registries over plain HTTP.")
	fs.BoolVar(&f.insecurePull, "insecure-pull", false, "Pull from registries over plain HTTP.")
	fs.StringArrayVar(&f.insecureRegistries, "insecure-registry", nil, "Registry (host[:port]) to push to and pull from over plain HTTP. Repeat for several.")
	fs.BoolVar(&f.skipTLSVerify, "skip-tls-verify", false, "Push without verifying registries' TLS certificates.")
	fs.BoolVar(&f.skipTLSVerifyPull, "skip-tls-verify-pull", false, "Pull without verifying registries' TLS certificates.")
	fs.StringArrayVar(&f.skipTLSVerifyRegistries, "skip-tls-verify-registry", nil, "Registry (host[:port]) whose TLS certificate is not verified, for pushes and pulls. Repeat for several.")
	fs.IntVar(&f.pushRetry, "push-retry", 0, "Number of times a failed push is retried, with exponential backoff.")
	fs.IntVar(&f.imageDownloadRetry, "image-download-retry", 0, "Number of times fetching a base image's manifest and config is retried after a failure, waiting 1 s, 2 s, 3 s, ... in between.")
	fs.IntVar(&f.imageFSExtractRetry, "image-fs-extract-retry", 0, "Number of times downloading a base image layer is retried after a failure (a dropped connection, a truncated or corrupted blob), waiting 1 s, 2 s, 4 s, ... in between. kaniko retries extracting the base from the registry; kiln downloads each layer to a file, checked against its digest, before extracting it, so the download is what is retried.")
	fs.BoolVar(&f.skipPushPermissionCheck, "skip-push-permission-check", false, "Do not check, before the build, that every destination accepts a push with the credentials at hand.")
	fs.BoolVar(&f.pushIgnoreImmutableTagErrors, "push-ignore-immutable-tag-errors", false, "Treat a push refused because the tag is immutable (ECR, Artifact Registry, Docker Hub, Harbor) as success, with a warning: the tag keeps its image.")
	addRegistryFlags(fs, &f.registryFlags)
	addFetchFlags(fs, &f.fetchFlags, fetchpolicy.Open)

	fs.BoolVar(&f.reproducible, "reproducible", false, "Strip timestamps from the image to make it reproducible.")
	fs.BoolVar(&f.skipUnusedStages, "skip-unused-stages", false, "Build only the stages the target needs; by default every stage up to the target is built.")
	fs.StringVar(&f.snapshotMode, "snapshot-mode", "redo", "How changes are detected after RUN: redo (file metadata), full (metadata and content hashes) or time (modification time and size). kiln defaults to redo, not kaniko's full: redo compares ctime and inode as well, which a RUN cannot forge, so it finds the same changes without reading every file.")
	fs.StringVar(&f.compression, "compression", "gzip", "Layer compression: gzip (Docker's media types, readable everywhere) or zstd (smaller, faster to unpack; makes the image an OCI one, which needs Docker 23+, containerd 1.5+ or podman).")
	fs.IntVar(&f.compressionLevel, "compression-level", -1, "Compression level: 1-9 for gzip, 1-22 for zstd; -1 or 0 keeps the compressor's default.")
	fs.BoolVar(&f.singleSnapshot, "single-snapshot", false, "Take one snapshot per stage, at its end, instead of one per instruction.")
	fs.BoolVar(&f.useNewRun, "use-new-run", false, "Accepted for kaniko compatibility; it changes nothing. kaniko's experimental RUN finds changes by modification time to avoid full snapshots; kiln's --snapshot-mode=redo already finds a RUN's changes without reading file contents, and, unlike mtime alone, does not miss any.")
	fs.StringArrayVar(&f.ignorePaths, "ignore-path", nil, "Path never extracted over, snapshotted or deleted. Repeat for several.")
	fs.BoolVar(&f.ignoreVarRun, "ignore-var-run", true, "Ignore /var/run in in-place builds (it often holds mounted sockets). Set to false to keep /var/run in the image.")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "Directory of the base-image cache, shared by builds and filled by kiln warm: base images found there are not downloaded. A tag is still resolved in its registry (the cached image stands in, with a warning, when the registry cannot be reached); an image given by digest needs no registry. Unlike kaniko, it needs no --cache, and no directory is used unless given.")
	fs.BoolVar(&f.cleanup, "cleanup", false, "Clean the filesystem at the end of the build. kiln always does: in-place builds restore the root and chroot roots are removed.")

	fs.StringArrayVar(&f.entitlements, "allow-insecure-entitlement", nil, entitlementUsage)
	fs.StringVar(&f.isolation, "isolation", "auto", "How RUN is isolated: chroot (a root directory per stage under --state-dir; needs root, or unprivileged user namespaces: a non-root kiln runs itself as root of one), inplace (the container's own /, like kaniko; refused outside a container without --force) or auto (inplace inside a container, chroot otherwise).")
	fs.StringVar(&f.seccomp, "seccomp", "default", seccompUsage)
	fs.StringVar(&f.inPlaceNS, "inplace-namespaces", "auto", inPlaceNamespacesUsage)
	fs.StringVar(&f.stateDir, "state-dir", "", "Directory for build roots, layers and scratch files. By default a new temporary directory, removed after the build; a given directory is kept.")
	fs.BoolVar(&f.force, "force", false, "Allow an in-place build outside a container. It overwrites this machine's root filesystem.")
	addLimitFlags(fs, &f.limits)

	fs.StringVarP(&f.verbosity, "verbosity", "v", "info", "Log level: panic, fatal, error, warn, info, debug or trace.")
	fs.StringVar(&f.logFormat, "log-format", "color", "Log format: text, color or json.")
	fs.BoolVar(&f.logTimestamp, "log-timestamp", false, "Timestamp log lines.")
	fs.BoolVar(&f.phaseTimes, "phase-times", false, "Log where the build's time went (context, base, run, snapshot, layer, compress, copy, cache, export) as one \"Phases:\" line at info level; it is logged at debug level anyway.")

	addCacheFlags(fs, &f.cacheFlags)
	addKanikoFlags(fs, f)
}

// addRegistryFlags registers the registry options kiln build and kiln serve share.
func addRegistryFlags(fs *pflag.FlagSet, f *registryFlags) {
	fs.StringArrayVar(&f.registryMirrors, "registry-mirror", nil, "Registry mirror (host[:port][/prefix]) for docker.io pulls, tried before docker.io. Repeat for several, tried in order; KANIKO_REGISTRY_MIRROR (comma-separated) adds more.")
	fs.StringArrayVar(&f.registryMaps, "registry-map", nil, "Registry remapping for pulls, original=mirror;original=mirror. Mirrors are tried in order, then the original registry.")
	fs.BoolVar(&f.skipDefaultRegistryFallback, "skip-default-registry-fallback", false, "Do not fall back from a registry's mirrors to the registry itself.")
	fs.StringArrayVar(&f.registryCertificates, "registry-certificate", nil, "Extra CA certificate trusted for a registry, registry=/path/ca.crt. Repeat for several.")
	fs.StringArrayVar(&f.registryClientCerts, "registry-client-cert", nil, "Client certificate for mutual TLS with a registry, registry=/path/cert.pem,/path/key.pem. Repeat for several.")
	fs.DurationVar(&f.netConnect, "net-connect-timeout", 0, "How long any network connection (registry, git, context or ADD download, bucket, token endpoint) may take to open; KILN_NET_CONNECT_TIMEOUT when not given, else 30s.")
	fs.DurationVar(&f.netStall, "net-stall-timeout", 0, "How long a network transfer may go without moving a byte before it fails (not a deadline: a big download may take as long as it keeps moving); KILN_NET_STALL_TIMEOUT when not given, else 2m.")
}

// entitlementUsage documents --allow-insecure-entitlement for kiln build and kiln serve.
const entitlementUsage = "Allow an insecure entitlement, as buildkitd's flag: security.insecure lets RUN --security=insecure run with every capability of kiln (network.host is accepted: RUN --network=host always runs). Repeat for several."

// allowInsecure reads --allow-insecure-entitlement values: whether RUN
// --security=insecure is allowed. Unknown entitlements are an error.
func allowInsecure(values []string) (bool, error) {
	allow := false
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			switch strings.TrimSpace(e) {
			case "security.insecure":
				allow = true
			case "network.host":
			default:
				return false, fmt.Errorf("--allow-insecure-entitlement: unknown entitlement %q (security.insecure or network.host)", e)
			}
		}
	}
	return allow, nil
}
