package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/apiserver"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/buildkitapi"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/store"
)

// defaultStateDir is where `kiln serve` keeps its store, build roots and socket unless
// --state-dir says otherwise.
const defaultStateDir = "/var/lib/kiln"

// shutdownGrace bounds how long a stopping server waits for cancelled builds to clean
// up (kill RUN, reset the root) before it closes their connections anyway.
const shutdownGrace = 30 * time.Second

// defaultMaxQueuedBuilds is --max-queued-builds' default: enough for a busy CI, small
// enough that a flood of builds is refused rather than held open.
const defaultMaxQueuedBuilds = 100

// newServeCommand returns `kiln serve`.
func newServeCommand(stderr io.Writer, h host) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve the Docker Engine build API, for docker build and curl",
		Long: `Serve the Docker Engine API subset that "docker build", "docker push" and
"docker images" use, so the docker CLI builds with kiln when DOCKER_HOST points here.

By default kiln listens on the unix socket kiln.sock in --state-dir, and prints the
"export DOCKER_HOST=..." line that points the docker CLI at it. -H adds or replaces
listeners: unix:///path (mode 0660) or tcp://host:port, several at once. TCP
listeners use TLS with --tls, and verify client certificates against --tlscacert with
--tlsverify, as dockerd does. --auth-token-file requires "Authorization: Bearer
<token>" on every request but /_ping; the docker CLI sends it from config.json:
  {"HttpHeaders": {"Authorization": "Bearer <token>"}}

RUN instructions are isolated by chroot (a root directory per build under
--state-dir; needs root) or run in place in the container's own root filesystem, as
kaniko does, one build at a time. By default kiln builds in place inside a container
and in a chroot elsewhere.

SIGTERM (what Kubernetes and docker stop send) drains: new builds are refused
(HTTP 503, /readyz false) while running ones get --shutdown-grace to finish; then
they are cancelled, the listeners close and the unix sockets go. SIGINT (and a
second SIGTERM) cancels the running builds at once. --metrics-addr serves
/metrics, /healthz and /readyz.`,
		Example: `  kiln serve --state-dir=$HOME/.kiln
  kiln serve -H unix:///run/kiln.sock -H tcp://0.0.0.0:2376 --tlsverify \
      --tlscacert=ca.pem --tlscert=server-cert.pem --tlskey=server-key.pem
  kiln serve -H tcp://0.0.0.0:2375 --auth-token-file=/etc/kiln/token --push-on-build`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			warnings, err := checkEmptyFlags(cmd.Flags())
			if err != nil {
				return err
			}
			f.flagWarnings = warnings
			if err := enterRootless(cmd.Context(), f.isolation, f.force, h); err != nil {
				return err
			}
			return runServe(cmd.Context(), f, h, stderr)
		},
	}
	cmd.Flags().SortFlags = false
	addServeFlags(cmd.Flags(), f)
	return cmd
}

// runServe is `kiln serve`: listen, print where, serve until ctx ends.
func runServe(ctx context.Context, f *serveFlags, h host, stderr io.Writer) error {
	d, err := startDaemon(ctx, f, h, stderr)
	if err != nil {
		return err
	}
	// One line a shell can eval: the docker CLI's DOCKER_HOST for the first listener.
	fmt.Fprintf(stderr, "export DOCKER_HOST=%s\n", d.hosts[0])
	return d.wait(ctx)
}

// startDaemon checks the flags, opens the store, listens and starts serving. Nothing
// is left listening when it fails.
func startDaemon(ctx context.Context, f *serveFlags, h host, stderr io.Writer) (*daemon, error) {
	lg, err := newLogger(stderr, f.verbosity, f.logFormat, f.logTimestamp)
	if err != nil {
		return nil, err
	}
	for _, w := range f.flagWarnings {
		lg.Warn(w)
	}
	rootlessNotes(lg)
	// One keychain for the server's life, so cloud tokens and failed lookups are
	// remembered across builds.
	limits, err := f.netLimits(h.lookupEnv)
	if err != nil {
		return nil, err
	}
	cfg, err := planServe(f, h, credentials.Chain(credentials.WithLogger(lg), credentials.WithNetLimits(limits)))
	if err != nil {
		return nil, err
	}
	if cfg.build.Workspace.Isolation == isolation.InPlace && !h.inContainer() {
		lg.Warn("Building in place outside a container (--force): builds modify this machine's root filesystem")
	}
	if cfg.build.Workspace.SeccompUnconfined && cfg.build.Workspace.Isolation == isolation.Chroot {
		lg.Warn(seccompWarning)
	}
	for _, w := range cfg.warnings {
		lg.Warn(w)
	}
	if err := os.MkdirAll(cfg.build.Workspace.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	// Builds a killed server left half done go before anything else reads the state.
	lock, err := recoverState(cfg.stateDir, lg)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	// The step cache ("Using cache") lives beside builds/, on the same filesystem, so a
	// build's layers are hard-linked into it rather than copied.
	steps, err := builder.NewLocalCache(filepath.Join(cfg.stateDir, "cache", "build"))
	if err != nil {
		return nil, fmt.Errorf("opening the build cache: %w", err)
	}
	cfg.build.Workspace.Cache = steps
	if err := f.openFleetCache(ctx, cfg, steps, lg); err != nil {
		return nil, err
	}
	if err := openCgroups(lg, &cfg.build.Workspace); err != nil {
		return nil, err
	}
	// An in-place root a crash left half built needs nothing here: every build resets
	// the root, under the build lock, before it uses it (builder.Build).

	opts := []apiserver.Option{
		apiserver.WithLogger(lg),
		apiserver.WithVersion(version),
		apiserver.WithStateDir(cfg.stateDir),
		apiserver.WithAuthToken(cfg.token),
	}
	storeDir := filepath.Join(cfg.stateDir, "store")
	st, err := store.Open(storeDir)
	if err != nil {
		return nil, fmt.Errorf("opening the image store %s: %w", storeDir, err)
	}
	// Blobs of images deleted while a push or a crash held them are collected now,
	// with store/tmp/: not while another server on the directory may be writing there.
	if !lock.alone {
		lg.Info("Not collecting the image store's garbage at start-up: another kiln serve uses it")
	} else if n, err := st.CollectGarbage(ctx); err != nil {
		lg.WithError(err).Warn("Collecting unreferenced blobs in the image store")
	} else if n > 0 {
		lg.Infof("Collected %d bytes of unreferenced blobs in the image store", n)
	}
	opts = append(opts, apiserver.WithStore(st))
	ops, err := newOpsServer(f.metricsAddr, lg)
	if err != nil {
		return nil, err
	}
	if ops != nil {
		cfg.build.Workspace.Observer = ops.metrics // every door's builds, through the engine
		ops.stateDir, ops.storeDir = cfg.stateDir, storeDir
	}
	// Both front doors take their build slots from one queue.
	cfg.build.Queue = builder.NewQueue(cfg.build.Workspace, cfg.build.MaxConcurrent,
		builder.WithMaxQueued(f.maxQueuedBuilds), builder.WithIdle(debug.FreeOSMemory))
	bk, err := buildkitapi.New(buildkitConfig(cfg.build, st, lg))
	if err != nil {
		return nil, fmt.Errorf("starting the BuildKit front door: %w", err)
	}
	opts = append(opts, apiserver.WithBuildConfig(cfg.build), apiserver.WithBuildKit(bk.Handler()))
	api := apiserver.New(opts...)

	d, err := listenAll(ctx, lg, cfg)
	if err != nil {
		bk.Close()
		return nil, err
	}
	d.queue, d.grace, d.ops = cfg.build.Queue, f.shutdownGrace, ops
	if ops != nil {
		ops.queue = cfg.build.Queue
		if err := ops.listen(ctx); err != nil {
			d.closeListeners()
			bk.Close()
			return nil, err
		}
	}
	d.stateLock = lock
	ok = true
	d.start(api.Handler(), bk)
	if ops != nil {
		ops.serve()
	}
	lg.Infof("kiln %s serving the Docker Engine API %s (isolation %s, state in %s, fetch policy %s)",
		version, apiserver.APIVersion, cfg.build.Workspace.Isolation, cfg.stateDir, fetchPolicyName(cfg.build.Workspace.Fetch))
	return d, nil
}

// serveConfig is what the flags say, checked.
type serveConfig struct {
	stateDir string
	hosts    []hostSpec
	// buildkitHosts are the --buildkit-addr listeners.
	buildkitHosts []hostSpec
	build         apiserver.BuildConfig
	tls           *tls.Config
	token         string
	// warnings are logged at start.
	warnings []string
}

// planServe checks the flags and turns them into a configuration, without creating
// anything.
func planServe(f *serveFlags, h host, keychain authn.Keychain) (*serveConfig, error) {
	if strings.TrimSpace(f.stateDir) == "" {
		return nil, fmt.Errorf("--state-dir: must not be empty; give a directory, such as %s", defaultStateDir)
	}
	stateDir, err := filepath.Abs(f.stateDir)
	if err != nil {
		return nil, fmt.Errorf("--state-dir %q: %w", f.stateDir, err)
	}
	specs := f.hosts
	if len(specs) == 0 {
		specs = []string{"unix://" + filepath.Join(stateDir, "kiln.sock")}
	}
	cfg := &serveConfig{stateDir: stateDir}
	for _, s := range specs {
		hs, err := parseHost(s, f.tls || f.tlsVerify)
		if err != nil {
			return nil, err
		}
		cfg.hosts = append(cfg.hosts, hs)
	}
	for _, a := range f.buildkitAddrs {
		hs, err := parseHost(a, f.tls || f.tlsVerify)
		if err != nil {
			return nil, fmt.Errorf("--buildkit-addr: %w", err)
		}
		cfg.buildkitHosts = append(cfg.buildkitHosts, hs)
	}
	if cfg.tls, err = loadTLS(f); err != nil {
		return nil, err
	}
	if f.authTokenFile != "" {
		data, err := os.ReadFile(f.authTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-token-file: %w", err)
		}
		if cfg.token = strings.TrimSpace(string(data)); cfg.token == "" {
			return nil, fmt.Errorf("--auth-token-file %s: the file is empty", f.authTokenFile)
		}
	}
	maxContext, err := parseSize(f.maxContextSize)
	if err != nil {
		return nil, fmt.Errorf("--max-context-size: %w", err)
	}
	var contextMemory int64
	if f.contextMemory != "0" {
		if contextMemory, err = parseSize(f.contextMemory); err != nil {
			return nil, fmt.Errorf("--context-memory: %w", err)
		}
	}
	if f.maxContextEntries < 1 {
		return nil, fmt.Errorf("--max-context-entries %d: must be at least 1", f.maxContextEntries)
	}
	if f.maxConcurrentBuilds < 1 {
		return nil, fmt.Errorf("--max-concurrent-builds %d: must be at least 1", f.maxConcurrentBuilds)
	}
	if f.maxQueuedBuilds < 0 {
		return nil, fmt.Errorf("--max-queued-builds %d: must be 0 (no bound) or more", f.maxQueuedBuilds)
	}

	// In place, a reset root would delete a socket kiln listens on outside the state
	// directory (/tmp/kiln.sock): sockets are ignored like kiln's other files.
	// In place, the whole state directory (store included) is kept out of the builds,
	// not only the build scratch space.
	own := []string{stateDir}
	for _, hs := range append(slices.Clone(cfg.hosts), cfg.buildkitHosts...) {
		if hs.network == "unix" {
			own = append(own, hs.address)
		}
	}
	baseCache := filepath.Join(stateDir, "cache", "base")
	if f.cacheDir != "" {
		if baseCache, err = baseCacheDir(f.cacheDir); err != nil {
			return nil, err
		}
		own = append(own, baseCache) // in place, the cache outlives every build
	}
	mode, err := resolveIsolation(&buildFlags{isolation: f.isolation, force: f.force}, h)
	if err != nil {
		return nil, err
	}
	ignore, err := ignoreSet(h, mode, f.ignoreVarRun, f.ignorePaths, own...)
	if err != nil {
		return nil, err
	}
	insecure, skipVerify := slices.Clone(f.insecureRegistries), slices.Clone(f.skipTLSVerifyRegistries)
	regs, err := planRegistryFlags(f.registryFlags, h.lookupEnv)
	if err != nil {
		return nil, err
	}
	cloud, err := cloudOptions(h.lookupEnv)
	if err != nil {
		return nil, err
	}
	allow, err := allowInsecure(f.entitlements)
	if err != nil {
		return nil, err
	}
	secrets, err := parseSecretFlags(f.secrets, h.lookupEnv)
	if err != nil {
		return nil, err
	}
	unconfined, err := parseSeccomp(f.seccomp)
	if err != nil {
		return nil, err
	}
	secretFiles := append(secretFlagFiles(f.secrets, nil, h.lookupEnv), f.tlsKey, f.authTokenFile)
	sec, err := planInPlace(h, mode, f.inPlaceNS, secretFiles, own...)
	if err != nil {
		return nil, err
	}
	if sec.warning != "" {
		cfg.warnings = append(cfg.warnings, sec.warning)
	}
	fetch, err := f.guard()
	if err != nil {
		return nil, err
	}
	limits, contextRatio, err := f.inputLimitFlags.limits()
	if err != nil {
		return nil, err
	}
	cfg.build = apiserver.BuildConfig{
		Workspace: builder.Workspace{
			AllowInsecure:     allow,
			SSHKnownHostsFile: knownHostsFile(f.knownHosts, h.lookupEnv),
			SeccompUnconfined: unconfined,
			InPlaceNamespaces: sec.namespaces,
			Hidden:            sec.hidden,
			Fetch:             fetch,
			Isolation:         mode,
			StateDir:          filepath.Join(stateDir, "builds"),
			BaseCache:         baseCache,
			Ignore:            ignore,
			InputLimits:       limits,
			// RUN --mount=type=cache outlives every build, like the step cache.
			MountCacheDir: filepath.Join(stateDir, "cache", "mounts"),
		},
		MaxConcurrent: f.maxConcurrentBuilds,
		PushOnBuild:   f.pushOnBuild,
		Secrets:       secrets,
		Keychain:      keychain,
		PlainHTTP:     func(registry string) bool { return slices.Contains(insecure, registry) },
		Insecure:      func(registry string) bool { return slices.Contains(skipVerify, registry) },
		Transport:     regs.pushTransport,
		Net:           regs.net,
		Cloud:         cloud,

		MaxContextBytes:   maxContext,
		MaxContextEntries: f.maxContextEntries,
		MaxContextRatio:   contextRatio,
	}
	if err := f.limits.plan(&cfg.build.Workspace); err != nil {
		return nil, err
	}
	cfg.build.MemoryDir, cfg.build.MemoryContextBytes = memoryContexts(f.contextMemoryDir, contextMemory)
	if len(regs.mirrors) > 0 {
		cfg.build.Mirrors = func(registry string) []string { return regs.mirrors[registry] }
		cfg.build.SkipDefaultFallback = f.skipDefaultRegistryFallback
	}
	return cfg, nil
}

// memoryContexts returns where build contexts are extracted first and how much of
// each may stay there: dir when it is a tmpfs, with at most a quarter of its free
// space (a container's /dev/shm is often 64 MB); nothing otherwise.
func memoryContexts(dir string, limit int64) (string, int64) {
	var st unix.Statfs_t
	if limit <= 0 || dir == "" || unix.Statfs(dir, &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return "", 0
	}
	if free := int64(st.Bavail) * st.Bsize / 4; free < limit {
		limit = free
	}
	if limit < 1<<20 {
		return "", 0
	}
	return dir, limit
}

// buildkitConfig is the BuildKit front door's configuration: the same workspace,
// queue, registries, limits and store as the Engine API's builds.
func buildkitConfig(b apiserver.BuildConfig, st *store.Store, lg *logrus.Logger) buildkitapi.Config {
	return buildkitapi.Config{
		Workspace: b.Workspace,
		Queue:     b.Queue,
		Registry: builder.Registry{
			Keychain: b.Keychain, PlainHTTP: b.PlainHTTP, Insecure: b.Insecure,
			Mirrors: b.Mirrors, SkipDefaultFallback: b.SkipDefaultFallback, Transport: b.Transport, Net: b.Net,
		},
		Push: output.PushConfig{
			Transport: b.PushTransport, PlainHTTP: b.PlainHTTP, SkipTLSVerify: b.Insecure,
			UserAgent: "kiln/" + version, Pushed: pushedBytes(b.Workspace.Observer),
		},
		MaxContextBytes:    b.MaxContextBytes,
		MaxContextEntries:  b.MaxContextEntries,
		MemoryDir:          b.MemoryDir,
		MemoryContextBytes: b.MemoryContextBytes,
		Store:              st,
		Log:                lg,
		Version:            version,
	}
}
