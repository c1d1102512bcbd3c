package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// host is what planning a build needs to know about this machine and process. The
// real one asks the isolation package and the OS; tests substitute their own.
type host struct {
	inContainer func() bool
	// inPlaceNamespaces says whether an in-place RUN may get its own namespaces
	// (isolation.InPlaceNamespaces).
	inPlaceNamespaces func(context.Context) error
	mountPoints       func() ([]string, error)
	executable        func() (string, error)
	lookupEnv         func(key string) (string, bool)
	// stdin is what a tar://stdin context is read from; nil means none.
	stdin io.Reader
	// mkdirTemp creates the default state directory.
	mkdirTemp func() (string, error)
	// mkdirRun creates a run's own state directory under parent (kiln's own
	// directory in place); tests keep it out of the machine's real /kiln.
	mkdirRun func(parent string) (string, error)
	// checkPush asks a registry whether a push would be accepted; nil skips the
	// check (tests that must not reach a registry).
	checkPush pushChecker
	// keychain is where registry credentials come from; nil means credentials.Chain()
	// (runBuild passes one that logs to the build's log).
	keychain authn.Keychain
}

// realHost is the running process's host.
func realHost() host {
	return host{
		inContainer:       isolation.InContainer,
		inPlaceNamespaces: isolation.InPlaceNamespaces,
		mountPoints:       isolation.MountPoints,
		executable:        os.Executable,
		lookupEnv:         os.LookupEnv,
		stdin:             os.Stdin,
		mkdirTemp:         func() (string, error) { return os.MkdirTemp("", "kiln-state-") },
		mkdirRun:          mkdirRun,
		checkPush:         output.CheckPushPermission,
	}
}

// mkdirRun creates a new run's state directory under parent, creating parent too.
func mkdirRun(parent string) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, "build-")
}

// buildPlan is one build, ready to run: what to build, where, how to pull, and where
// the image goes.
type buildPlan struct {
	req       *builder.Request
	workspace builder.Workspace
	registry  builder.Registry
	outputs   outputs
	// ownStateDir is set when the state directory was created for this build and is
	// to be removed after it.
	ownStateDir bool
	// cache is the step cache (--cache), nil for none; the workspace holds it too.
	cache *stepCache
	// warnings are logged before the build starts.
	warnings []string
}

// outputs says where a built image goes.
type outputs struct {
	// push sends the image to every destination.
	push         bool
	destinations []name.Tag
	tarPath      string
	layoutPath   string
	// Digest files (kaniko's --digest-file, --image-name-with-digest-file,
	// --image-name-tag-with-digest-file); empty means none.
	digestFile, nameDigestFile, nameTagDigestFile string
	pushRetry                                     int
	// skipPushCheck skips the push permission check before the build.
	skipPushCheck bool
	// ignoreImmutableTags lets a push refused because the tag is immutable pass.
	ignoreImmutableTags bool
	// skipTLSVerify reports the registries pushed to without certificate checks.
	skipTLSVerify func(registry string) bool
	// pushTransport returns the transport for pushes to a registry (its CA and
	// client certificate); nil means go-containerregistry's default.
	pushTransport func(registry string) http.RoundTripper
	// builderOutput is kaniko's BUILDER_OUTPUT directory, "" for none.
	builderOutput string
	// compressor is how layers leave kiln (--compression, --compression-level),
	// memoized in the state directory.
	compressor *output.Compressor
}

// planBuild checks the flags and turns them into a build. It reads the Dockerfile and
// opens the context, and creates the state directory last, so a plan that fails
// leaves nothing behind.
func planBuild(ctx context.Context, f *buildFlags, h host) (*buildPlan, error) {
	if err := applyKanikoEnv(f, h.lookupEnv); err != nil {
		return nil, err
	}
	out, err := planOutputs(f)
	if err != nil {
		return nil, err
	}
	out.builderOutput, _ = h.lookupEnv("BUILDER_OUTPUT")
	regs, err := planRegistries(f, h.lookupEnv)
	if err != nil {
		return nil, err
	}
	out.pushTransport = regs.pushTransport
	mode, err := resolveIsolation(f, h)
	if err != nil {
		return nil, err
	}
	snapMode, err := snapshot.ParseMode(f.snapshotMode)
	if err != nil {
		return nil, fmt.Errorf("--snapshot-mode: %w", err)
	}
	compression, level, err := parseCompression(f.compression, f.compressionLevel)
	if err != nil {
		return nil, err
	}
	if f.platform != "" {
		if err := parsePlatformFlag("custom-platform", f.platform); err != nil {
			return nil, err
		}
	}
	if err := checkBuildArgs(f.buildArgs); err != nil {
		return nil, err
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return nil, err
	}
	secrets, err := parseSecretFlags(f.secrets, h.lookupEnv)
	if err != nil {
		return nil, err
	}
	agents, err := parseSSHFlags(f.ssh, h.lookupEnv)
	if err != nil {
		return nil, err
	}
	ctxOpts, err := contextOptions(f, h, agents)
	if err != nil {
		return nil, err
	}
	// Before the context is fetched and anything is built: a destination that refuses
	// the push fails the build now, not at its end.
	keychain := h.keychain
	if keychain == nil {
		keychain = credentials.Chain(credentials.WithNetLimits(regs.net))
	}
	pull := pullRegistry(f, keychain)
	cacheAt, err := planCacheTarget(f, out, pull.Keychain)
	if err != nil {
		return nil, err
	}
	if err := checkPushPermissions(ctx, out, pull.Keychain, h.checkPush); err != nil {
		return nil, err
	}
	phases := builder.NewPhases() // the build's wall clock starts with its context
	var bctx *contexts.Context
	err = phases.Time(builder.PhaseContext, func() (err error) {
		bctx, err = contexts.Open(ctx, contextSpec(f), ctxOpts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	planned := false
	defer func() {
		if !planned {
			bctx.Close() // a fetched context's temporary directory
		}
	}()
	dockerfile, err := readDockerfile(bctx.Dir, f.dockerfile)
	if err != nil {
		return nil, err
	}

	p := &buildPlan{
		req: &builder.Request{
			Dockerfile:       dockerfile,
			DockerfileName:   f.dockerfile,
			Context:          bctx,
			Phases:           phases,
			BuildArgs:        resolveBuildArgs(f.buildArgs, h.lookupEnv),
			Labels:           labels,
			Target:           f.target,
			Platform:         f.platform,
			SkipUnusedStages: f.skipUnusedStages,
			Reproducible:     f.reproducible,
			SnapshotMode:     snapMode,
			Compression:      compression,
			CompressionLevel: level,
			SingleSnapshot:   f.singleSnapshot,
			ExtractRetries:   f.imageFSExtractRetry,
			Secrets:          secrets,
			SSH:              agents,
		},
		registry: pull,
		outputs:  out,
	}
	regs.apply(&p.registry, f.skipDefaultRegistryFallback)

	stateDir := f.stateDir
	if stateDir == "" && f.kanikoDir != "" {
		// kaniko's directory, given: kiln's files go there, as kaniko's would.
		parent := filepath.Join(f.kanikoDir, "state")
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, fmt.Errorf("--kaniko-dir: %w", err)
		}
		if stateDir, err = os.MkdirTemp(parent, "build-"); err != nil {
			return nil, fmt.Errorf("--kaniko-dir: %w", err)
		}
		p.ownStateDir = true
	}
	lockFile := "" // the state directory's build.lock
	if stateDir == "" && mode == isolation.InPlace {
		// In place, "/" is the image: the state lives in kiln's own directory (kaniko's
		// /kaniko), which the build never touches, rather than in the image's /tmp.
		if dir, err := h.executable(); err == nil && builder.InstallDir(dir) != dir {
			parent := filepath.Join(builder.InstallDir(dir), "state")
			if stateDir, err = h.mkdirRun(parent); err == nil {
				p.ownStateDir = true
				// Every run's state is its own; the build lock is shared by
				// all runs in this container.
				lockFile = filepath.Join(parent, "build.lock")
			} else {
				stateDir = ""
			}
		}
	}
	if stateDir == "" {
		if stateDir, err = h.mkdirTemp(); err != nil {
			return nil, fmt.Errorf("creating a state directory: %w", err)
		}
		p.ownStateDir = true
	} else {
		if stateDir, err = filepath.Abs(stateDir); err != nil {
			return nil, fmt.Errorf("--state-dir: %w", err)
		}
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("--state-dir: %w", err)
		}
	}
	own := []string{stateDir}
	if f.kanikoDir != "" {
		own = append(own, f.kanikoDir)
	}
	ignore, err := ignoreSet(h, mode, f.ignoreVarRun, f.ignorePaths, own...)
	if err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if root := bctx.TempRoot(); root != "" && mode == isolation.InPlace {
		ignore = ignore.With(root) // a fetched context must survive the build in "/"
	}
	baseCache, err := baseCacheDir(f.cacheDir)
	if err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if baseCache != "" && mode == isolation.InPlace {
		ignore = ignore.With(baseCache) // the cache must survive the build in "/"
	}
	if p.outputs.compressor, err = output.NewCompressor(compressMemoDir(stateDir), output.Compression(compression.String()), level,
		output.WithCompressTimer(func(d time.Duration) { p.req.Phases.Add(builder.PhaseCompress, d) })); err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if p.outputs.compresses() || (cacheAt != nil && cacheAt.repo != nil) {
		comp := p.outputs.compressor
		p.req.LayerSinks = func() (builder.LayerSink, error) {
			s, err := comp.NewSink()
			if s == nil || err != nil {
				return nil, err
			}
			return s, nil
		}
	}
	p.workspace = builder.Workspace{Isolation: mode, StateDir: stateDir, Ignore: ignore, BaseCache: baseCache, LockFile: lockFile,
		SSHKnownHostsFile: knownHostsFile(f.knownHosts, h.lookupEnv)}
	sec, err := planInPlace(h, mode, f.inPlaceNS, secretFlagFiles(f.secrets, f.ssh, h.lookupEnv), append(own, baseCache)...)
	if err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	p.workspace.InPlaceNamespaces, p.workspace.Hidden = sec.namespaces, sec.hidden
	if sec.warning != "" {
		p.warnings = append(p.warnings, sec.warning)
	}
	if p.workspace.SeccompUnconfined, err = parseSeccomp(f.seccomp); err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if err = f.limits.plan(&p.workspace); err == nil {
		p.workspace.AllowInsecure, err = allowInsecure(f.entitlements)
	}
	if err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if p.workspace.Fetch, err = f.guard(); err != nil {
		if p.ownStateDir {
			os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if cacheAt != nil {
		if p.cache, err = cacheAt.open(f, stateDir, p.outputs.compressor); err != nil {
			if p.ownStateDir {
				os.RemoveAll(stateDir)
			}
			return nil, err
		}
		p.workspace.Cache = p.cache.cache
	}
	planned = true
	return p, nil
}

// compresses reports whether the image leaves kiln, so its new layers are compressed
// while the build writes them (builder.Request.LayerSinks) rather than at export: a
// push, a tarball or layout, or a digest file (the digest is the compressed
// manifest's).
func (o outputs) compresses() bool {
	return o.push || o.tarPath != "" || o.layoutPath != "" ||
		o.digestFile != "" || o.nameDigestFile != "" || o.nameTagDigestFile != ""
}

// planOutputs checks where the image goes, with kaniko's rules: pushing needs a
// destination, and the name-with-digest files name destinations.
func planOutputs(f *buildFlags) (outputs, error) {
	out := outputs{
		push:                !f.noPush,
		tarPath:             f.tarPath,
		layoutPath:          f.ociLayoutPath,
		digestFile:          f.digestFile,
		nameDigestFile:      f.imageNameDigestFile,
		nameTagDigestFile:   f.imageNameTagDigestFile,
		pushRetry:           f.pushRetry,
		skipPushCheck:       f.skipPushPermissionCheck,
		ignoreImmutableTags: f.pushIgnoreImmutableTagErrors,
		skipTLSVerify: func(registry string) bool {
			return f.skipTLSVerify || slices.Contains(f.skipTLSVerifyRegistries, registry)
		},
	}
	if len(f.destinations) == 0 {
		// Writing the image locally is an output of its own, so --tar-path or
		// --oci-layout-path alone does not need --no-push (kaniko demands it).
		if f.noPush || f.tarPath != "" || f.ociLayoutPath != "" {
			out.push = false
		} else {
			return outputs{}, errors.New("you must provide --destination, or use --no-push (or --tar-path / --oci-layout-path)")
		}
		if f.imageNameDigestFile != "" {
			return outputs{}, errors.New("you must provide --destination if setting --image-name-with-digest-file")
		}
		if f.imageNameTagDigestFile != "" {
			return outputs{}, errors.New("you must provide --destination if setting --image-name-tag-with-digest-file")
		}
	}
	for _, d := range f.destinations {
		tag, err := parseDestination(d, f)
		if err != nil {
			return outputs{}, err
		}
		out.destinations = append(out.destinations, tag)
	}
	if f.pushRetry < 0 {
		return outputs{}, fmt.Errorf("--push-retry %d: must not be negative", f.pushRetry)
	}
	if f.imageDownloadRetry < 0 {
		return outputs{}, fmt.Errorf("--image-download-retry %d: must not be negative", f.imageDownloadRetry)
	}
	if f.imageFSExtractRetry < 0 {
		return outputs{}, fmt.Errorf("--image-fs-extract-retry %d: must not be negative", f.imageFSExtractRetry)
	}
	if err := checkOutputPaths(f); err != nil {
		return outputs{}, err
	}
	return out, nil
}

// checkOutputPaths fails, before the build rather than after it, when a file output
// names an existing directory or the OCI layout names an existing file.
func checkOutputPaths(f *buildFlags) error {
	files := []struct{ flag, path, example string }{
		{"tar-path", f.tarPath, "image.tar"},
		{"digest-file", f.digestFile, "digest"},
		{"image-name-with-digest-file", f.imageNameDigestFile, "image-name"},
		{"image-name-tag-with-digest-file", f.imageNameTagDigestFile, "image-name-tag"},
	}
	for _, o := range files {
		if fi, err := os.Stat(o.path); o.path != "" && err == nil && fi.IsDir() {
			return fmt.Errorf("--%s %s: is a directory; give the path of a file to write, such as %s", o.flag, o.path, filepath.Join(o.path, o.example))
		}
	}
	if fi, err := os.Stat(f.ociLayoutPath); f.ociLayoutPath != "" && err == nil && !fi.IsDir() {
		return fmt.Errorf("--oci-layout-path %s: not a directory; give a directory for the OCI layout (created when missing)", f.ociLayoutPath)
	}
	return nil
}

// parseDestination parses a --destination as a tag (kaniko rejects digests there),
// reached over plain HTTP under --insecure or when its registry is an
// --insecure-registry.
func parseDestination(d string, f *buildFlags) (name.Tag, error) {
	// go-containerregistry's message quotes the bad part last, which is invisible when
	// it is blank ("repository can only contain ...: "), so whitespace is named here.
	if i := strings.IndexFunc(d, unicode.IsSpace); i >= 0 {
		return name.Tag{}, fmt.Errorf("--destination %q: white space at byte %d; an image reference has none", d, i)
	}
	tag, err := name.NewTag(d, name.WeakValidation)
	if err != nil {
		return name.Tag{}, refError("--destination", d, err)
	}
	if f.insecure || slices.Contains(f.insecureRegistries, tag.RegistryStr()) {
		if tag, err = name.NewTag(d, name.WeakValidation, name.Insecure); err != nil {
			return name.Tag{}, refError("--destination", d, err)
		}
	}
	return tag, nil
}

// pullRegistry says how base images are pulled. builder.Registry's NameOptions apply
// to every reference, so one --insecure-registry lets every pull fall back to plain
// HTTP; certificate checks, in contrast, are skipped per registry.
func pullRegistry(f *buildFlags, keychain authn.Keychain) builder.Registry {
	reg := builder.Registry{
		Keychain: keychain,
		Insecure: func(registry string) bool {
			return f.skipTLSVerifyPull || slices.Contains(f.skipTLSVerifyRegistries, registry)
		},
		Retries: f.imageDownloadRetry,
	}
	if f.insecurePull || len(f.insecureRegistries) > 0 {
		reg.PlainHTTP = func(registry string) bool {
			return f.insecurePull || slices.Contains(f.insecureRegistries, registry)
		}
	}
	return reg
}

// resolveIsolation picks the isolation mode. In-place builds overwrite "/", so outside
// a container they need --force, as kaniko's executor does.
func resolveIsolation(f *buildFlags, h host) (isolation.Mode, error) {
	inContainer := h.inContainer()
	if f.isolation == "auto" || f.isolation == "" {
		if inContainer {
			return isolation.InPlace, nil
		}
		return isolation.Chroot, nil
	}
	mode, err := isolation.ParseMode(f.isolation)
	if err != nil {
		return 0, fmt.Errorf("--isolation: %w (or auto)", err)
	}
	if mode == isolation.InPlace && !inContainer && !f.force {
		return 0, errors.New("--isolation=inplace builds in this machine's own root filesystem, and kiln is not running inside a container: " +
			"the build would overwrite this machine's files. Use --isolation=chroot, or --force if you are sure")
	}
	return mode, nil
}

// ignoreSet returns the paths the build must leave alone: builder.IgnoreSet's rules
// applied to what this machine holds (its mounts, the kiln binary) and to kiln's own
// directories (stateDirs), with --ignore-path (extra) and --ignore-var-run. Both kiln
// build and kiln serve get theirs here.
func ignoreSet(h host, mode isolation.Mode, keepVarRun bool, extra []string, stateDirs ...string) (*snapshot.Ignore, error) {
	if mode != isolation.InPlace {
		return builder.IgnoreSet(mode, builder.InPlaceHost{}, extra...), nil
	}
	mounts, err := h.mountPoints()
	if err != nil {
		return nil, fmt.Errorf("listing mount points: %w", err)
	}
	exe, err := h.executable()
	if err != nil {
		return nil, fmt.Errorf("locating the kiln binary: %w", err)
	}
	return builder.IgnoreSet(mode, builder.InPlaceHost{
		Mounts: mounts, Executable: exe, StateDirs: stateDirs, KeepVarRun: keepVarRun,
	}, extra...), nil
}

// checkBuildArgs fails on a --build-arg without a name ("=VALUE").
func checkBuildArgs(args []string) error {
	for _, a := range args {
		if k, _, _ := strings.Cut(a, "="); strings.TrimSpace(k) == "" {
			return fmt.Errorf("--build-arg %q: the name is empty; give KEY=VALUE, or KEY alone to take the value from the environment", a)
		}
	}
	return nil
}

// resolveBuildArgs parses --build-arg values. KEY alone takes its value from the
// environment and is left out when the environment has none, as docker build does.
func resolveBuildArgs(args []string, lookupEnv func(string) (string, bool)) map[string]*string {
	if len(args) == 0 {
		return nil
	}
	out := make(map[string]*string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if v, ok = lookupEnv(k); !ok {
				continue
			}
		}
		out[k] = &v
	}
	return out
}

// parseLabels parses --label KEY=VALUE values; KEY alone is an empty label.
func parseLabels(labels []string) (map[string]string, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(labels))
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, fmt.Errorf("--label %q: the key is empty", l)
		}
		out[k] = v
	}
	return out, nil
}

// readDockerfile reads the Dockerfile named by --dockerfile: an absolute path, or a
// path relative to the context directory, read inside the context and size-capped as
// the server reads it (contexts.ReadDockerfile). Like kaniko, a relative path that the
// context does not hold is tried relative to the working directory; one that leaves the
// context by its own ".." ("../Dockerfile") is read from the host as kaniko reads it.
func readDockerfile(contextDir, spec string) ([]byte, error) {
	if filepath.IsAbs(spec) {
		return readHostDockerfile(contextDir, spec)
	}
	if !filepath.IsLocal(spec) {
		// The operator's own path out of the context ("../Dockerfile", as kaniko reads
		// it): trusted as an absolute one would be. Symlinks in the context are still
		// resolved inside it.
		return readHostDockerfile(contextDir, filepath.Join(contextDir, spec))
	}
	data, err := contexts.ReadDockerfile(contextDir, filepath.ToSlash(spec))
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, contexts.ErrOutsideContext):
		return nil, fmt.Errorf("--dockerfile: %w (give an absolute path for a Dockerfile outside the context)", err)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	return readHostDockerfile(contextDir, spec)
}

// readHostDockerfile reads a --dockerfile of the host's (absolute, or relative to the
// working directory), size-capped.
func readHostDockerfile(contextDir, spec string) ([]byte, error) {
	data, err := contexts.ReadHostDockerfile(spec)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no Dockerfile %q in the context %s: provide a valid path with --dockerfile", spec, contextDir)
	case err != nil:
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	return data, nil
}

// compressMemoDir is where a state directory memoizes compressed layers: next to the
// local build cache, which kiln serve shares.
func compressMemoDir(stateDir string) string {
	return filepath.Join(stateDir, "cache", "build", "compressed")
}

// parseCompression checks --compression and --compression-level. kaniko's level
// default, -1, is the compressor's default, which the builder spells 0.
func parseCompression(name string, level int) (snapshot.Compression, int, error) {
	c, err := snapshot.ParseCompression(name)
	if err != nil || c == snapshot.Uncompressed {
		return 0, 0, fmt.Errorf("--compression=%s: want gzip or zstd", name)
	}
	if level == -1 {
		level = 0
	}
	if err := c.CheckLevel(level); err != nil {
		return 0, 0, fmt.Errorf("--compression-level: %w", err)
	}
	return c, level, nil
}
