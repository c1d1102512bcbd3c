package apiserver

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/store"
)

// buildRoutes registers POST /build. The middleware strips /v1.NN prefixes, so the
// route is unversioned. Builds take their slots from the server's queue, which other
// front doors (the BuildKit one) share; in-place builds are serialized across
// processes by the engine's build lock anyway.
func (s *Server) buildRoutes(r *mux.Router) {
	q := s.build.Queue
	if q == nil {
		q = builder.NewQueue(s.build.Workspace, s.build.MaxConcurrent)
	}
	r.HandleFunc("/build", func(w http.ResponseWriter, r *http.Request) { s.postBuild(w, r, q) }).
		Methods(http.MethodPost)
}

// postBuild answers POST /build (docs/server.md): it reads the whole context
// before answering anything, waits for a build slot, runs the build with its events
// rendered as dockerd's classic builder writes them, stores the image under its tags
// and, when configured, pushes the tags that name a registry.
//
// The request's context is the build's: a client that disconnects cancels the build
// (the RUN's process group is killed), and its slot goes to the next build.
func (s *Server) postBuild(w http.ResponseWriter, r *http.Request, q *builder.Queue) {
	ctx := r.Context()
	start := time.Now()
	fail := func(e *apiError) {
		drain(r.Body)
		writeError(w, e.status, e.msg)
	}
	o, aerr := parseBuildOptions(r.URL.Query())
	if aerr != nil {
		fail(aerr)
		return
	}
	if s.store == nil {
		fail(&apiError{status: http.StatusInternalServerError, msg: "no image store"})
		return
	}
	if s.build.Workspace.StateDir == "" {
		fail(&apiError{status: http.StatusInternalServerError, msg: "the server has no state directory for builds"})
		return
	}
	// A full queue refuses before the context is uploaded; Acquire decides for good.
	if err := q.Admit(); err != nil {
		fail(&apiError{status: http.StatusServiceUnavailable, msg: err.Error()})
		return
	}
	// Everything of this build lives here, and goes when the outputs are stored.
	dir, err := os.MkdirTemp(s.build.Workspace.StateDir, scratchPrefixBuild)
	if err != nil {
		fail(&apiError{status: http.StatusInternalServerError, msg: "creating the build directory: " + err.Error()})
		return
	}
	defer os.RemoveAll(dir)

	memDir := ""
	if s.build.MemoryDir != "" && s.build.MemoryContextBytes > 0 {
		// A failure here only costs speed: the context goes to disk from the start.
		if m, err := os.MkdirTemp(s.build.MemoryDir, scratchPrefixBuild); err == nil {
			memDir = m
			defer os.RemoveAll(memDir)
		}
	}
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	phases := builder.NewPhases() // logged with the build: where its time went
	readStart := time.Now()
	bctx, aerr := readContext(ctx, r, o, filepath.Join(dir, "context"), memDir, s.build)
	phases.Since(builder.PhaseContext, readStart)
	if obs := s.build.Workspace.Observer; obs != nil {
		obs.Transferred(builder.TransferContext, body.n.Load())
	}
	if aerr != nil {
		fail(aerr)
		return
	}
	df, dfName, aerr := readDockerfile(bctx, o.dockerfile)
	if aerr != nil {
		fail(aerr)
		return
	}
	kc := s.requestKeychain(r)
	out := newBuildOutput(r.Context(), w, o.quiet)
	log := s.requestLog(r).WithFields(logrus.Fields{"tags": o.typed, "dockerfile": dfName})

	release, err := q.Acquire(ctx, out.info)
	if err != nil {
		log.WithError(err).Info("build abandoned while queued")
		out.fail(w, err)
		return
	}
	ws := s.build.Workspace
	// Every build has a state directory of its own; the build lock stays the
	// server's, so in-place builds of this and other processes never overlap.
	ws.LockFile = s.build.Workspace.LockPath()
	ws.StateDir = filepath.Join(dir, "state")
	if err := os.Mkdir(ws.StateDir, 0o700); err != nil {
		release()
		out.fail(w, err)
		return
	}
	if msg := cacheFromWarning(o.cacheFrom); msg != "" {
		out.event(builder.Warning{Message: msg})
	}
	req := &builder.Request{
		Dockerfile:     df,
		DockerfileName: dfName,
		Context:        bctx,
		BuildArgs:      o.buildArgs,
		Labels:         o.labels,
		Target:         o.target,
		Platform:       o.platform,
		NoCache:        o.noCache,
		Pull:           pullPolicy(o.pull),
		NoNetwork:      o.noNetwork,
		Limits:         o.limits,
		Secrets:        s.build.Secrets,
		Phases:         phases,
	}
	if s.build.PushOnBuild && s.pushesSome(o) {
		req.LayerSinks = s.layerSinks()
	}
	res, err := builder.Build(ctx, req,
		builder.WithWorkspace(ws),
		builder.WithEvents(out.event),
		builder.WithRegistry(builder.Registry{
			Keychain: kc, PlainHTTP: s.build.PlainHTTP, Insecure: s.build.Insecure,
			Mirrors: s.build.Mirrors, SkipDefaultFallback: s.build.SkipDefaultFallback, Transport: s.build.Transport, Net: s.build.Net,
		}),
	)
	// The root is free once the image exists: its layers are files under dir, and
	// Build has put an in-place root back in its pristine state.
	release()
	if err != nil {
		log.WithError(err).WithFields(builder.Classify(err).Fields()).WithFields(phases.Times().Fields()).WithField("duration", time.Since(start)).Info("build failed")
		out.fail(w, err)
		return
	}
	if err := phases.Exclusive(builder.PhaseExport, func() error { return s.finishBuild(ctx, out, res, o, kc) }); err != nil {
		log.WithError(err).Info("storing or pushing the build failed")
		out.fail(w, err)
		return
	}
	log.WithFields(logrus.Fields{"id": res.ID.String(), "duration": time.Since(start)}).WithFields(phases.Times().Fields()).Info("build done")
}

// finishBuild stores the image under its tags, reports it, and pushes when configured.
func (s *Server) finishBuild(ctx context.Context, out *buildOutput, res *builder.Result, o *buildOptions, kc authn.Keychain) error {
	if _, err := s.store.Put(ctx, res.Image, o.tags...); err != nil {
		return err
	}
	names := make([]string, len(o.tags))
	for i, t := range o.tags {
		names[i] = store.Familiar(t)
	}
	out.built(res.ID, names)
	if !s.build.PushOnBuild {
		return nil
	}
	return s.pushTags(ctx, out, res.Image, o, kc)
}

// requestKeychain is the keychain of one request: its X-Registry-Config credentials,
// then the server's. dockerd ignores a header it cannot decode; so does kiln, logging
// why (never the header: it holds passwords).
func (s *Server) requestKeychain(r *http.Request) authn.Keychain {
	var kcs []authn.Keychain
	if h := r.Header.Get("X-Registry-Config"); h != "" {
		kc, err := credentials.FromRegistryConfig(h)
		if err != nil {
			s.requestLog(r).WithError(err).Warn("ignoring the request's registry credentials")
		} else {
			kcs = append(kcs, kc)
		}
	}
	if s.build.Keychain != nil {
		kcs = append(kcs, s.build.Keychain)
	}
	return authn.NewMultiKeychain(kcs...)
}

// pullPolicy is Docker's: without --pull a base image already in the server's base
// cache is used as it is; with --pull the registry is asked for the tag's current image.
func pullPolicy(pull bool) builder.PullPolicy {
	if pull {
		return builder.PullAlways
	}
	return builder.PullIfMissing
}
