// Package apiserver owns kiln's Docker Engine API front door: the routes the docker CLI
// and curl use (/_ping, /version, /info, /build, /images/..., /auth, prunes), their
// middleware, the Docker JSON message stream, and the build queue. It turns each
// request into a builder.Request and renders builder events the way dockerd's classic
// builder writes them (docs/server.md).
package apiserver

import (
	"errors"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/store"
)

// APIVersion is the Docker Engine API version kiln advertises (dockerd 20.10's, the
// last with the classic builder as its default).
const APIVersion = "1.41"

// ErrShutdown is the cause the server's base context (http.Server.BaseContext) is
// cancelled with when kiln serve stops. Every request's context then ends with it as
// context.Cause, so a handler can tell its client the build was stopped instead of
// ending the stream as if it had finished, which the CLI would read as success.
var ErrShutdown = errors.New("kiln serve is shutting down")

// Server serves the Docker Engine API subset over any listener.
type Server struct {
	log   *logrus.Logger
	store *store.Store
	build BuildConfig

	// version is kiln's own version: /version, /info and the Server header report it.
	version string
	// stateDir is reported as /info's DockerRootDir.
	stateDir string
	// authToken, when set, is the bearer token every request but /_ping must carry.
	authToken string
	// buildkit answers POST /grpc and /session (the BuildKit front door), nil for none.
	buildkit http.Handler
	// facts describes the machine for /version and /info, read once by New: in-place
	// builds replace files such as /etc/os-release while they run.
	facts hostFacts
}

// BuildConfig says how the server runs builds.
type BuildConfig struct {
	// Workspace is the template for every build: isolation, the state directory under
	// which each build gets its own, and the in-place ignore set.
	Workspace builder.Workspace
	// MaxConcurrent bounds builds running at once in chroot isolation (in-place builds
	// are always one at a time). 0 means 1. It sizes the queue when Queue is nil.
	MaxConcurrent int
	// Queue hands out build slots; a server's front doors share one. Nil means a
	// queue of the server's own, of MaxConcurrent slots.
	Queue *builder.Queue
	// PushOnBuild pushes every tag that names a registry when a build succeeds.
	PushOnBuild bool
	// Secrets are the server's own secrets for RUN --mount=type=secret in /build
	// requests (kiln serve --secret), which the Engine API cannot carry; nil means
	// none. Their values never reach a log line, a layer or the history.
	Secrets builder.SecretStore
	// Keychain authenticates base-image pulls and pushes when a request carries no
	// credentials of its own.
	Keychain authn.Keychain
	// PlainHTTP and Insecure select registries reached over plain HTTP or with
	// unverified TLS.
	PlainHTTP, Insecure func(registry string) bool
	// Mirrors lists the mirrors base-image pulls try before a registry (and only
	// them, with SkipDefaultFallback).
	Mirrors             func(registry string) []string
	SkipDefaultFallback bool
	// Transport is the transport for one registry (its CA, its client certificate);
	// nil (or a nil answer) means go-containerregistry's default held to Net.
	Transport func(registry string) http.RoundTripper
	// Net are the connect and stall limits of every fetch a build or an API call
	// makes: pulls, pushes, token endpoints, remote= contexts, ADD URLs. Zero means
	// nettimeout's defaults.
	Net nettimeout.Limits
	// Cloud configures remote= contexts in buckets (s3://, gs://, Azure Blob). They are
	// fetched with the server's own cloud credentials.
	Cloud contexts.CloudOptions
	// MaxContextBytes and MaxContextEntries bound what one build's context may hold once
	// extracted, whatever its source (upload, remote= URL, git, bucket); 0 means
	// DefaultMaxContextBytes and DefaultMaxContextEntries. They stop a decompression bomb
	// or a runaway upload from filling the state volume.
	MaxContextBytes   int64
	MaxContextEntries int
	// MaxContextRatio bounds how many times a compressed context archive (upload or
	// remote= download) may expand its size (contexts.WithMaxRatio); 0 is unlimited.
	MaxContextRatio int64
	// MemoryDir, a directory on a tmpfs, is where build contexts are extracted first:
	// creating many small files costs a tenth of what it costs on a disk. A context
	// moves to the state directory once its files hold more than MemoryContextBytes.
	// "" or 0: contexts go to the state directory from the start.
	MemoryDir          string
	MemoryContextBytes int64
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the server's logger.
func WithLogger(l *logrus.Logger) Option { return func(s *Server) { s.log = l } }

// WithStore sets the local image store.
func WithStore(st *store.Store) Option { return func(s *Server) { s.store = st } }

// WithBuildConfig sets how builds run.
func WithBuildConfig(c BuildConfig) Option { return func(s *Server) { s.build = c } }

// WithVersion sets the kiln version the server reports ("dev" by default).
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithStateDir names the server's state directory, which /info reports as
// DockerRootDir.
func WithStateDir(dir string) Option { return func(s *Server) { s.stateDir = dir } }

// WithAuthToken makes every request except /_ping carry "Authorization: Bearer
// token". The ping stays open because the docker CLI pings before anything else and
// uses its headers even from a failed ping; the token guards everything else.
func WithAuthToken(token string) Option { return func(s *Server) { s.authToken = token } }

// WithBuildKit routes POST /grpc and POST /session, the upgrades buildx's docker
// driver opens, to h: BuildKit's front door (package buildkitapi), which cmd/kiln
// wires in. Without it both answer 404, as a dockerd without BuildKit does.
func WithBuildKit(h http.Handler) Option { return func(s *Server) { s.buildkit = h } }

// New returns a server.
func New(opts ...Option) *Server {
	s := &Server{log: logrus.New(), version: "dev"}
	for _, o := range opts {
		o(s)
	}
	s.facts = readHostFacts(s.stateDir)
	return s
}

// Handler returns the server's HTTP handler, middleware included.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	s.systemRoutes(r)
	s.buildRoutes(r)
	s.imageRoutes(r)
	s.containerRoutes(r)
	if s.buildkit != nil {
		r.Handle("/grpc", s.buildkit).Methods(http.MethodPost)
		r.Handle("/session", s.buildkit).Methods(http.MethodPost)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "page not found")
	})
	// A known path with the wrong method. dockerd answers 404 here; 405 says what is
	// wrong, in the same JSON shape so the CLI prints the message.
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
	return s.middleware(r)
}
