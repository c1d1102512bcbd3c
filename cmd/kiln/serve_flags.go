package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/apiserver"
	"github.com/kiln-build/kiln/fetchpolicy"
)

// serveFlags holds the values of kiln serve's flags. The listener and TLS flags are
// dockerd's, so a dockerd command line's -H and --tls* parts carry over.
type serveFlags struct {
	hosts         []string
	buildkitAddrs []string
	stateDir      string
	cacheDir      string

	isolation    string
	seccomp      string
	inPlaceNS    string // --inplace-namespaces
	force        bool
	entitlements []string // --allow-insecure-entitlement
	secrets      []string // --secret, for /build
	knownHosts   string   // --ssh-known-hosts
	ignorePaths  []string
	ignoreVarRun bool

	maxConcurrentBuilds     int
	maxQueuedBuilds         int
	limits                  limitFlags
	maxContextSize          string
	maxContextEntries       int
	contextMemory           string
	contextMemoryDir        string
	pushOnBuild             bool
	insecureRegistries      []string
	skipTLSVerifyRegistries []string
	registryFlags
	fetchFlags
	inputLimitFlags
	serveCacheFlags

	tls, tlsVerify             bool
	tlsCACert, tlsCert, tlsKey string
	authTokenFile              string

	metricsAddr   string        // --metrics-addr: /metrics, /healthz, /readyz
	shutdownGrace time.Duration // --shutdown-grace

	verbosity    string
	logFormat    string
	logTimestamp bool
	// flagWarnings: see buildFlags.flagWarnings.
	flagWarnings []string
}

// addServeFlags registers kiln serve's flags on fs, bound to f.
func addServeFlags(fs *pflag.FlagSet, f *serveFlags) {
	fs.StringArrayVarP(&f.hosts, "host", "H", nil, "Address to listen on: unix:///path or tcp://host:port (port 2375, or 2376 with TLS, when left out). Repeat for several. Default: unix://<state-dir>/kiln.sock.")
	fs.StringArrayVar(&f.buildkitAddrs, "buildkit-addr", nil, "Address to serve BuildKit's gRPC API on, for buildx's remote driver and buildctl: unix:///path or tcp://host:port (TCP uses the --tls* flags). Repeat for several. The Engine API listeners serve it too, for docker build with buildx.")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "Directory of the base-image cache (an OCI image layout, which kiln warm fills too): base images found there are not downloaded again. Default: <state-dir>/cache/base.")
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir, "Directory for the image store (store/), build roots and scratch files (builds/) and the default socket.")

	fs.StringArrayVar(&f.entitlements, "allow-insecure-entitlement", nil, entitlementUsage)
	fs.StringArrayVar(&f.secrets, "secret", nil, "Secret for RUN --mount=type=secret in /build requests (the Docker Engine API cannot carry one): id=ID,src=PATH or id=ID,env=VARIABLE, as kiln build takes it. Every /build request may mount it; the BuildKit door uses the client's --secret instead. Repeat for several.")
	fs.StringVar(&f.knownHosts, "ssh-known-hosts", "", knownHostsUsage)
	fs.StringVar(&f.isolation, "isolation", "auto", "How RUN is isolated: chroot (a root directory per build under --state-dir; needs root, or unprivileged user namespaces: a non-root kiln runs itself as root of one), inplace (the container's own /, like kaniko; one build at a time; refused outside a container without --force) or auto (inplace inside a container, chroot otherwise).")
	fs.StringVar(&f.seccomp, "seccomp", "default", seccompUsage)
	fs.StringVar(&f.inPlaceNS, "inplace-namespaces", "auto", inPlaceNamespacesUsage)
	fs.BoolVar(&f.force, "force", false, "Allow in-place builds outside a container. They overwrite this machine's root filesystem.")
	fs.StringArrayVar(&f.ignorePaths, "ignore-path", nil, "Path never extracted over, snapshotted or deleted by in-place builds. Repeat for several.")
	fs.BoolVar(&f.ignoreVarRun, "ignore-var-run", true, "Ignore /var/run in in-place builds (it often holds mounted sockets).")

	fs.IntVar(&f.maxConcurrentBuilds, "max-concurrent-builds", 1, "Builds that run at once in chroot isolation; others wait their turn. In-place builds always run one at a time.")
	fs.IntVar(&f.maxQueuedBuilds, "max-queued-builds", defaultMaxQueuedBuilds, "Builds that may wait for a slot at once (both front doors together); more are refused at once (HTTP 503, gRPC RESOURCE_EXHAUSTED) before their context is received. 0: no bound.")
	addLimitFlags(fs, &f.limits)
	fs.StringVar(&f.maxContextSize, "max-context-size", "32GiB", "Largest build context a build may upload or make the server fetch (remote= URL, git, bucket), counted uncompressed: bytes or a size such as 512MiB or 4GiB.")
	fs.StringVar(&f.contextMemory, "context-memory", "256MiB", "How much of a build context may be extracted into memory (a tmpfs, --context-memory-dir) before it moves to the state directory; creating many small files costs a tenth of what it costs on a disk. The BuildKit door's received contexts, the cached ones included, share one such budget. 0 turns it off. At most a quarter of the tmpfs's free space is used.")
	fs.StringVar(&f.contextMemoryDir, "context-memory-dir", "/dev/shm", "The tmpfs --context-memory uses; when it is not a tmpfs, contexts go to the state directory.")
	fs.IntVar(&f.maxContextEntries, "max-context-entries", apiserver.DefaultMaxContextEntries, "Most files and directories a build context may hold.")
	addInputLimitFlags(fs, &f.inputLimitFlags)
	fs.BoolVar(&f.pushOnBuild, "push-on-build", false, "Push every tag that names a registry as soon as its build succeeds (kaniko's behaviour, for clients that cannot push).")
	fs.StringArrayVar(&f.insecureRegistries, "insecure-registry", nil, "Registry (host[:port]) reached over plain HTTP, for pulls and pushes. Repeat for several.")
	fs.StringArrayVar(&f.skipTLSVerifyRegistries, "skip-tls-verify-registry", nil, "Registry (host[:port]) whose TLS certificate is not verified. Repeat for several.")
	addRegistryFlags(fs, &f.registryFlags)
	addFetchFlags(fs, &f.fetchFlags, fetchpolicy.Strict)
	addServeCacheFlags(fs, &f.serveCacheFlags)

	fs.BoolVar(&f.tls, "tls", false, "Serve TCP listeners over TLS (--tlscert, --tlskey).")
	fs.BoolVar(&f.tlsVerify, "tlsverify", false, "Serve TCP listeners over TLS and accept only clients with a certificate signed by --tlscacert.")
	fs.StringVar(&f.tlsCACert, "tlscacert", "", "CA certificates (PEM) that client certificates must be signed by.")
	fs.StringVar(&f.tlsCert, "tlscert", "", "The server's TLS certificate (PEM).")
	fs.StringVar(&f.tlsKey, "tlskey", "", "The server's TLS key (PEM).")
	fs.StringVar(&f.authTokenFile, "auth-token-file", "", "File holding a bearer token every request but /_ping must carry (Authorization: Bearer <token>).")

	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "Address to serve Prometheus /metrics and the /healthz and /readyz probes on, without the Docker API's TLS or token: unix:///path or tcp://host:port. Default: none.")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", defaultShutdownGrace, "On SIGTERM, how long running builds may take to finish while new ones are refused (HTTP 503, /readyz false); then they are cancelled. 0 cancels at once, as SIGINT and a second SIGTERM do.")
	fs.StringVarP(&f.verbosity, "verbosity", "v", "info", "Log level: panic, fatal, error, warn, info, debug or trace.")
	fs.StringVar(&f.logFormat, "log-format", "text", "Log format: text, color or json.")
	fs.BoolVar(&f.logTimestamp, "log-timestamp", true, "Timestamp log lines.")
}
