package builder

import (
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/snapshot"
)

// Request is everything one build needs. Every front door (the kaniko-style CLI, the
// Docker API server) turns its input into a Request; nothing else reaches the builder.
type Request struct {
	// Dockerfile is the Dockerfile's content. DockerfileName is how messages name it.
	Dockerfile     []byte
	DockerfileName string

	// Context is the build context: a local directory plus its .dockerignore rules.
	Context *contexts.Context

	// BuildArgs are --build-arg values; a nil value means "take it from the
	// environment of the front door" and is resolved there, or left unset.
	BuildArgs map[string]*string
	// Labels are added to the final image's config (--label).
	Labels map[string]string
	// Target names the stage to build (--target); empty means the last stage.
	Target string
	// Platform is the platform to build for, "os/arch[/variant]"; empty means the host's.
	Platform string
	// SkipUnusedStages builds only the stages the target depends on (kaniko's
	// --skip-unused-stages). Docker's classic builder builds every stage before the target.
	SkipUnusedStages bool
	// Reproducible strips timestamps from layers and the config (kaniko's --reproducible).
	Reproducible bool

	// SnapshotMode selects how a RUN's changes are found; see snapshot.Mode.
	SnapshotMode snapshot.Mode
	// Compression is how new layers are compressed when the image leaves kiln
	// (kaniko's --compression): gzip, the default and Docker's, or zstd, which makes
	// the image an OCI one. The build itself writes plain tars; the front door hands
	// this to its outputs (output.Compressor).
	Compression snapshot.Compression
	// CompressionLevel is the compressor's level (--compression-level: gzip 1-9,
	// zstd 1-22); 0 keeps its default. snapshot.CheckLevel validates it.
	CompressionLevel int
	// LayerSinks, when set, gives each layer the build writes a sink that receives its
	// plain tar in the same pass (LayerSink). A door whose image will leave kiln (a
	// push, a tarball) sets it to its output's compressor, so compression overlaps the
	// layer write as kaniko's did instead of being a second pass at export; a build
	// with no output leaves it nil and never compresses. A sink's failure only costs
	// that pass: the output compresses the layer itself.
	LayerSinks func() (LayerSink, error)
	// SingleSnapshot takes one snapshot at the end of each stage instead of one per
	// instruction (kaniko's --single-snapshot). It turns the build cache off: steps
	// then have no layers of their own to store.
	SingleSnapshot bool
	// NoCache looks nothing up in the workspace's cache (docker build --no-cache):
	// every step runs. What the steps do is still stored for later builds.
	NoCache bool
	// ExtractRetries is how many more times a base image layer whose download failed
	// (a dropped connection, a truncated or corrupted blob) is fetched again before
	// the build fails: kaniko's --image-fs-extract-retry. Registry.Retries covers the
	// manifest and config (--image-download-retry), this the layers.
	ExtractRetries int
	// Pull says when a base image named by a tag is looked up in its registry although
	// the workspace's base cache holds it (docker build --pull is PullAlways).
	Pull PullPolicy
	// NoNetwork runs every RUN in a network namespace with only loopback, as RUN
	// --network=none does (docker build --network=none: /build's networkmode=none,
	// the BuildKit door's force-network-mode=none). A RUN --network=host still gets the
	// server's network, as in BuildKit, where the flag overrides the build's mode.
	// It needs chroot isolation.
	NoNetwork bool
	// Limits are the resource limits of every RUN (/build's memory, memswap, pids,
	// cpu*, shmsize and ulimits; buildx's --shm-size and --ulimit), capped by the
	// workspace's MaxMemory and MaxPids. They need chroot isolation.
	Limits Limits

	// Secrets supplies RUN --mount=type=secret (kiln build --secret, the BuildKit
	// session); nil means the build has none: a required secret fails its RUN, an
	// optional one is not mounted.
	Secrets SecretStore
	// Syntax is the frontend a front door was asked for (the BuildKit door's
	// gateway.v0 source, e.g. docker/dockerfile:1); empty when none. A `# syntax=` line
	// in the Dockerfile takes precedence. Docker's own frontend is built with kiln's
	// Dockerfile support (a warning says so); any other is an error (BuiltinFrontend).
	Syntax string

	// SSH supplies RUN --mount=type=ssh (kiln build --ssh, the BuildKit session's
	// sshforward); nil means no agents, with the same rules as Secrets.
	SSH SSHAgents

	// Phases receives the build's time per phase (see PhaseTimes). A door that does
	// work for the build outside Build (receiving the context before, writing the
	// outputs after) makes it with NewPhases, records that work in it and reads the
	// whole breakdown from it at the end; nil: Build keeps its own.
	Phases *Phases
}

// Workspace is where a build runs: how RUN is isolated, where build roots and
// temporary files live, and the paths a root must never have touched. It is a value,
// never a global.
type Workspace struct {
	// Isolation is chroot (a root directory of its own per stage, under StateDir) or
	// in-place (the container's own "/", reset between stages).
	Isolation isolation.Mode
	// StateDir holds chroot roots and scratch files (layer blobs, downloads, the
	// filesystems of images used by COPY --from). It must not be inside an in-place root
	// unless it is also in Ignore.
	StateDir string
	// Ignore holds paths (in image terms, e.g. /proc) that are never extracted over,
	// snapshotted or deleted. In-place builds need the mount points, /proc, /sys, /dev,
	// kiln's own directory and the state dir here.
	Ignore *snapshot.Ignore
	// Cache stores what build steps did, for later builds to reuse (see docs/caching.md);
	// nil builds without one. It lives here rather than in the Request because, like
	// StateDir, it outlives a build and is shared by all builds of a front door.
	Cache Cache
	// SharedCache is a second-level step cache several servers share (kiln serve
	// --cache-repo: a registry repository, builder/registrycache); nil means none.
	// A step missing from Cache is looked up there and, when found, stored in Cache;
	// every step stored goes to both. A SharedCache that is a CacheFlusher is flushed
	// before Build returns, so the steps are there for the next build on any server.
	SharedCache Cache
	// BaseCache is the directory of the persistent base-image cache (kaniko's
	// --cache-dir, filled by builds and by `kiln warm`): an OCI image layout shared by
	// concurrent builds. Empty means none: every build downloads its base layers into
	// its state directory. See Request.Pull for when a cached tag is trusted.
	BaseCache string
	// LockFile is the file in-place builds hold locked while they run, so that builds
	// of several front doors or processes sharing one root never run at once; empty
	// means build.lock in StateDir. Build takes the lock itself (see LockPath).
	LockFile string
	// MountCacheDir holds the directories of RUN --mount=type=cache, kept across
	// builds (kiln serve: <state-dir>/cache/mounts). Empty means cache-mounts in
	// StateDir. MountCacheMaxBytes bounds them: after a build that used them, the
	// least recently used beyond it are removed (0: DefaultMountCacheMaxBytes).
	MountCacheDir      string
	MountCacheMaxBytes int64
	// Budget bounds the local caches together (kiln serve --cache-max-size): after
	// each build, the least recently used entries go until they fit. nil: no bound
	// but MountCacheMaxBytes. Shared by every build of a server, like Cache.
	Budget *CacheBudget

	// AllowInsecure allows RUN --security=insecure, the server's entitlement
	// (buildkitd's and kiln's --allow-insecure-entitlement=security.insecure): such a
	// RUN keeps every capability of the builder. Off, it is an error. The BuildKit door
	// also wants the client's entitlement (buildctl --allow security.insecure).
	AllowInsecure bool
	// SSHKnownHostsFile, when set, is a known_hosts file the host key of an ssh git
	// remote (ADD git@host:repo.git) must be listed in. Empty accepts any host key,
	// as BuildKit's ADD does in effect (see docs/dockerfile.md).
	SSHKnownHostsFile string
	// SeccompUnconfined runs chroot RUNs without Docker's default seccomp profile and
	// without no_new_privs (kiln's --seccomp=unconfined), for debugging only.
	SeccompUnconfined bool
	// InPlaceNamespaces gives every in-place RUN new user, mount, PID and IPC
	// namespaces (isolation.WithNamespaces): Hidden is covered in them, kiln's
	// processes are out of reach, and network none works in place. Front doors set
	// it where isolation.InPlaceNamespaces says the kernel allows it.
	InPlaceNamespaces bool
	// Hidden are the paths no in-place RUN may read (HiddenPaths: kiln's
	// credentials, keys, sockets and state); covered only with InPlaceNamespaces.
	Hidden []string

	// Fetch vets every connection a build makes to fetch something its Dockerfile
	// names (ADD URLs, ADD git repositories) after DNS resolution: the server's
	// fetch policy against server-side request forgery (fetchpolicy.Policy; nil
	// allows everything). Base-image pulls and pushes go to the registries the
	// operator configures and are not held to it.
	Fetch nettimeout.Guard

	// Observer is told what builds do (a server's metrics); nil tells nobody. A
	// Queue made for the workspace reports its waits to it too.
	Observer Observer

	// Cgroups is where chroot RUNs get a cgroup of their own carrying the build's
	// memory, pids and cpu limits (isolation.OpenCgroups); nil refuses such limits.
	Cgroups *isolation.Cgroups
	// MaxMemory and MaxPids cap every RUN of every build (kiln serve --build-memory,
	// --build-pids), whatever the request asks; 0 is no cap. With MaxMemory, memory
	// plus swap is capped at it too.
	MaxMemory, MaxPids int64
	// Timeout cancels a build that runs longer (kiln serve --build-timeout); 0 is none.
	Timeout time.Duration

	// Limits bound what the client controls (Dockerfile size and instructions, layers,
	// ADD's archives); the zero value is the defaults (see Limits).
	InputLimits InputLimits

	// root replaces "/" as the in-place root in tests.
	root string
}

// Registry says how images are pulled: credentials, platform choice, TLS.
type Registry struct {
	Keychain authn.Keychain
	// NameOptions parse references (e.g. name.Insecure for plain-HTTP registries).
	NameOptions []name.Option
	// PlainHTTP reports registries that may be reached over plain HTTP (--insecure-pull,
	// --insecure-registry). Loopback registries always may, as in go-containerregistry.
	PlainHTTP func(registry string) bool
	// Insecure reports registries whose TLS certificates are not verified.
	Insecure func(registry string) bool
	// Retries is how many times a failed pull is retried (--image-download-retry).
	Retries int
	// Mirrors returns, in order, the registries (host[:port], optionally followed by a
	// path prefix) tried instead of registry (as name.Registry.RegistryStr spells it,
	// e.g. index.docker.io). The original registry is tried after them unless
	// SkipDefaultFallback is set. Nil means no mirrors.
	Mirrors func(registry string) []string
	// SkipDefaultFallback stops a pull at its mirrors: when a registry has mirrors and
	// none of them serves the image, the pull fails rather than reach the original.
	SkipDefaultFallback bool
	// Transport returns the HTTP transport used for registry (extra CAs, client
	// certificates), or nil for go-containerregistry's default held to Net. Insecure
	// still applies on top of an *http.Transport.
	Transport func(registry string) http.RoundTripper
	// Net are the connect and stall limits of the build's fetches: pulls through the
	// default transport, and ADD's URL downloads. Zero means nettimeout's defaults.
	Net nettimeout.Limits
}

// Result is what a successful build produced.
type Result struct {
	// Image is the built image (the target stage), an immutable ggcr value whose layers
	// are files under the workspace's scratch directory until the build is cleaned up.
	Image v1.Image
	// ID is the image ID (config digest), as Docker prints it.
	ID v1.Hash
}

// InPlace reports whether builds in this workspace use the container's own root.
func (ws Workspace) InPlace() bool { return ws.Isolation == isolation.InPlace }

// A LayerSink takes one layer's plain tar as the build writes it (Write), then the
// layer's diff ID when it is complete (Commit), or Abort when the layer failed.
type LayerSink interface {
	io.Writer
	Commit(diffID v1.Hash) error
	Abort()
}
