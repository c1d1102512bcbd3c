package buildkitapi

import (
	"errors"
	"net"
	"net/http"
	"sync"

	controlapi "github.com/moby/buildkit/api/services/control"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/store"
)

// Config says how the door runs builds. cmd/kiln fills it from the same flags as the
// Engine API's, so a BuildKit build and a /build behave the same.
type Config struct {
	// Workspace is the template for every build: isolation, the state directory under
	// which each build gets its own, the in-place ignore set, the step cache.
	Workspace builder.Workspace
	// Queue hands out build slots; the Engine API's /build takes its slots from the
	// same queue. Nil means a queue of one slot.
	Queue *builder.Queue
	// Registry is how base images are pulled. Its Keychain is the server's; each build
	// puts the client's own credentials (the session's auth provider) before it.
	Registry builder.Registry
	// Push is how images are pushed (exporter image with push=true); its Keychain is
	// replaced per build like Registry's.
	Push output.PushConfig
	// MaxContextBytes and MaxContextEntries bound what one build's context may hold,
	// as they do for /build; 0 means no bound.
	MaxContextBytes   int64
	MaxContextEntries int
	// ContextCacheEntries is how many clients' last contexts are kept for incremental
	// transfer; 0 means DefaultContextCacheEntries.
	ContextCacheEntries int
	// MemoryDir, a directory on a tmpfs, is where received contexts go first; the
	// contexts held there (the cached ones included) hold at most MemoryContextBytes
	// of files together, and a context that outgrows that moves to the state
	// directory. Creating thousands of small files costs a tenth of what it costs on a
	// disk. Empty or 0: contexts go to the state directory.
	MemoryDir          string
	MemoryContextBytes int64
	// Store is the local image store: the moby exporter's destination, the images
	// `docker images` lists.
	Store *store.Store
	// Log receives one line per build and per protocol failure.
	Log *logrus.Logger
	// Version is kiln's version, reported as the worker's BuildKit version.
	Version string
}

// Server serves BuildKit's gRPC API. One Server holds every session and build of a
// kiln serve process, whichever listener they came in through.
type Server struct {
	cfg      Config
	sessions *session.Manager
	grpc     *grpc.Server
	jobs     *jobs
	contexts *contextCache

	// bkLog receives what BuildKit's own session code logs: at kiln's debug level
	// only, since it reports a client's normal goodbye (a session whose connection
	// closed fails its health check) as an error.
	bkLog *logrus.Entry

	// conns are the hijacked /grpc connections, closed by Close.
	mu    sync.Mutex
	conns map[net.Conn]struct{}

	closeOnce sync.Once
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.Queue == nil {
		cfg.Queue = builder.NewQueue(cfg.Workspace, 1)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	sm, err := session.NewManager()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		sessions: sm,
		jobs:     newJobs(),
		conns:    map[net.Conn]struct{}{},
		bkLog:    sessionLogger(cfg.Log),
		contexts: newContextCache(cfg.Workspace.StateDir, cfg.ContextCacheEntries, cfg.MemoryDir, cfg.MemoryContextBytes),
	}
	s.grpc = grpc.NewServer(
		grpc.UnaryInterceptor(grpcerrors.UnaryServerInterceptor),
		grpc.StreamInterceptor(grpcerrors.StreamServerInterceptor),
		grpc.MaxRecvMsgSize(maxMessage),
		grpc.MaxSendMsgSize(maxMessage),
	)
	controlapi.RegisterControlServer(s.grpc, &control{s: s})
	gatewaypb.RegisterLLBBridgeServer(s.grpc, &bridge{s: s})
	return s, nil
}

// maxMessage bounds one gRPC message: a Solve carries a Dockerfile's frontend options
// and definitions, never a context (that comes through the session's file sync).
const maxMessage = 32 << 20

// Handler answers the Engine API's BuildKit upgrades: POST /grpc (BuildKit's gRPC API
// over h2c on the hijacked connection) and POST /session (the client's session). The
// Engine API server routes both here; anything else is a 404.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /grpc", s.serveGRPCUpgrade)
	mux.HandleFunc("POST /session", s.serveSession)
	return mux
}

// sessionLogger is a logger for BuildKit's session code: kiln's output and format,
// silent unless kiln logs at debug level.
func sessionLogger(l *logrus.Logger) *logrus.Entry {
	q := logrus.New()
	q.SetOutput(l.Out)
	q.SetFormatter(l.Formatter)
	q.SetLevel(logrus.PanicLevel)
	if l.IsLevelEnabled(logrus.DebugLevel) {
		q.SetLevel(l.GetLevel())
	}
	return logrus.NewEntry(q).WithField("component", "buildkit-session")
}

// serveSession hands the /session upgrade to the session manager, which hijacks the
// connection and becomes the h2 client of the methods the CLI exposes.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	if err := s.sessions.HandleHTTPRequest(bklog.WithLogger(r.Context(), s.bkLog), w, r); err != nil {
		s.cfg.Log.WithError(err).Warn("buildkit session")
	}
}

// Serve answers BuildKit's gRPC API on l (kiln serve --buildkit-addr) until l fails or
// Close is called. TLS, when wanted, is l's: the listener hands over decrypted
// connections whose ALPN said h2.
func (s *Server) Serve(l net.Listener) error {
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Close stops serving: running solves are cancelled and every connection closes.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.jobs.cancelAll(errShutdown)
		s.grpc.Stop()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.conns = nil
		s.mu.Unlock()
		s.contexts.closeMemory()
	})
}

// errShutdown is what running builds end with when the server stops.
var errShutdown = errors.New("kiln serve is shutting down")
