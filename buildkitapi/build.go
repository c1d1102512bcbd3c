package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/session"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/builder"
)

// sessionWait bounds how long a solve waits for the session it names to connect.
const sessionWait = time.Minute

// built is a finished build whose image waits for its exporters: its layers are files
// under dir until release.
type built struct {
	res  *builder.Result
	dir  string
	opts *frontendOptions
	// session is the client's, for exporters that write to it; sessionID names it
	// for credential lookups.
	session   session.Caller
	sessionID string
	// phases, start and log are the build's, for the line logged once it is exported
	// (exported).
	phases *builder.Phases
	start  time.Time
	log    *logrus.Entry
}

// exported runs the export, in the build's export phase, and logs the build's
// "build done" line (its phases, the export included) or the export's failure.
func (b *built) exported(export func() error) error {
	if b.phases == nil {
		return export()
	}
	err := b.phases.Exclusive(builder.PhaseExport, export)
	if err != nil {
		b.log.WithError(err).WithField("duration", time.Since(b.start)).Info("exporting the build failed")
		return err
	}
	b.log.WithFields(logrus.Fields{"id": b.res.ID.String(), "duration": time.Since(b.start)}).WithFields(b.phases.Times().Fields()).Info("build done")
	return nil
}

// release removes the build's files.
func (b *built) release() {
	if b != nil && b.dir != "" {
		os.RemoveAll(b.dir)
		b.dir = ""
	}
}

// metadata is what a gateway result carries back to the client.
func (b *built) metadata() map[string][]byte {
	return map[string][]byte{"containerimage.config.digest": []byte(b.res.ID.String())}
}

// build runs one Dockerfile build for job j: it reads the frontend options, receives
// the files through the session, waits for a slot in the server's queue and runs the
// engine, rendering its events into j's status stream.
func (s *Server) build(ctx context.Context, j *job, attrs map[string]string, sessionID string) (b *built, err error) {
	start := time.Now()
	p := newProgress(j.status.publish)
	defer func() { p.close(err) }()
	log := s.cfg.Log.WithFields(logrus.Fields{"ref": j.ref})
	o, err := parseFrontendOptions(attrs)
	if err != nil {
		return nil, codeError(codes.InvalidArgument, "%w", err)
	}
	if len(o.attestations) > 0 {
		p.info(fmt.Sprintf("[internal] %s attestation skipped: kiln does not produce attestations", strings.Join(o.attestations, " and ")))
	}
	if sessionID == "" {
		return nil, codeError(codes.InvalidArgument, "the solve names no session: the build context and Dockerfile come through one")
	}
	sctx, cancel := context.WithTimeout(ctx, sessionWait)
	caller, err := s.sessions.Get(sctx, sessionID, false)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("the client's session %s did not connect: %w", sessionID, err)
	}

	// A full queue refuses before the context is received; Acquire decides for good.
	if err := s.cfg.Queue.Admit(); err != nil {
		return nil, codeError(refusalCode(err), "%w", err)
	}
	dir, err := os.MkdirTemp(s.cfg.Workspace.StateDir, "bk-build-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	phases := builder.NewPhases() // logged once the build is exported (built.exported)
	recvStart := time.Now()
	src, err := s.receive(ctx, caller, o, p)
	phases.Since(builder.PhaseContext, recvStart)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() { src.release(keep) }()

	release, err := s.cfg.Queue.Acquire(ctx, p.info)
	if builder.IsQueueFull(err) || builder.IsDraining(err) {
		return nil, codeError(refusalCode(err), "%w", err)
	}
	if err != nil {
		return nil, err
	}
	defer release()
	ws := s.cfg.Workspace
	ws.LockFile = s.cfg.Workspace.LockPath()
	ws.StateDir = filepath.Join(dir, "state")
	// RUN --security=insecure wants both entitlements, as in BuildKit: the server's
	// (--allow-insecure-entitlement) and the client's (buildctl --allow security.insecure).
	ws.AllowInsecure = ws.AllowInsecure && j.req != nil && slices.Contains(j.req.Entitlements, "security.insecure")
	if err := os.Mkdir(ws.StateDir, 0o700); err != nil {
		return nil, err
	}
	reg := s.cfg.Registry
	reg.Keychain = s.keychain(ctx, sessionID)
	var cacheOpts *controlapi.CacheOptions
	if j.req != nil {
		cacheOpts = j.req.Cache
	}
	rc, flush, err := s.solveCache(cacheOpts, reg.Keychain, dir, p)
	if err != nil {
		return nil, codeError(codes.InvalidArgument, "%w", err)
	}
	if rc != nil {
		ws.Cache = rc
	}
	res, err := builder.Build(ctx, &builder.Request{
		Dockerfile:     src.dockerfile,
		DockerfileName: src.dockerfileName,
		Context:        src.context,
		BuildArgs:      o.buildArgs,
		Labels:         o.labels,
		Target:         o.target,
		Platform:       o.platform,
		NoCache:        o.noCache,
		Pull:           o.pull,
		NoNetwork:      o.noNetwork,
		Limits:         o.limits,
		Syntax:         o.syntax,
		Secrets:        sessionSecrets{caller},
		SSH:            sessionSSH{caller},
		Phases:         phases,
	}, builder.WithWorkspace(ws), builder.WithEvents(p.event), builder.WithRegistry(reg))
	keep = true // the transfer was complete, whatever the build did with it
	if flush != nil {
		if ferr := flush(ctx); ferr != nil {
			p.warn("uploading to the cache repository: " + ferr.Error())
		}
	}
	if err != nil {
		log.WithError(err).WithFields(builder.Classify(err).Fields()).WithField("duration", time.Since(start)).Info("build failed")
		// The message ends with whose problem the failure is (builder.Classify).
		return nil, buildError(&builder.ClassifiedError{Err: solveError(err, src.dockerfile, src.dockerfileName), Classification: builder.Classify(err)})
	}
	return &built{res: res, dir: dir, opts: o, session: caller, sessionID: sessionID, phases: phases, start: start, log: log}, nil
}

// buildError is how a failed build reaches the client: a cancelled one as Canceled,
// anything else as the build's own message, which the CLI prints after
// "failed to solve:".
func buildError(err error) error {
	if errors.Is(err, context.Canceled) {
		return codeError(codes.Canceled, "%w", err)
	}
	return err
}

// refusalCode is the gRPC code of a build the queue refused: Unavailable while the
// server drains (try another server), ResourceExhausted when the queue is full.
func refusalCode(err error) codes.Code {
	if builder.IsDraining(err) {
		return codes.Unavailable
	}
	return codes.ResourceExhausted
}
