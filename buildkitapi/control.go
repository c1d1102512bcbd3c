package buildkitapi

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
	apitypes "github.com/moby/buildkit/api/types"
	"github.com/moby/buildkit/session/grpchijack"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/bklog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/builder"
)

// dockerfileFrontend is the one frontend kiln has: its own Dockerfile support.
const dockerfileFrontend = "dockerfile.v0"

// control is BuildKit's Control service. Calls kiln has no use for (build history)
// answer Unimplemented, which clients tolerate.
type control struct {
	controlapi.UnimplementedControlServer
	s *Server
}

// ListWorkers reports one worker: this server, for the host's platform. It carries no
// snapshotter label, so that buildx's docker driver pushes and loads through the
// Engine API as it does with a classic dockerd.
func (c *control) ListWorkers(ctx context.Context, _ *controlapi.ListWorkersRequest) (*controlapi.ListWorkersResponse, error) {
	return &controlapi.ListWorkersResponse{Record: []*apitypes.WorkerRecord{c.s.worker()}}, nil
}

// worker is the one worker this server is.
func (s *Server) worker() *apitypes.WorkerRecord {
	host, _ := os.Hostname()
	return &apitypes.WorkerRecord{
		ID: "kiln",
		Labels: map[string]string{
			"org.mobyproject.buildkit.worker.executor": "kiln-" + s.cfg.Workspace.Isolation.String(),
			"org.mobyproject.buildkit.worker.hostname": host,
			"org.mobyproject.buildkit.worker.network":  "host",
		},
		Platforms:       []*pb.Platform{hostPlatform()},
		BuildkitVersion: s.version(),
	}
}

// hostPlatform is the platform kiln builds for: the host's.
func hostPlatform() *pb.Platform {
	p := &pb.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// apiVersion is the BuildKit release whose API kiln serves. buildx compares the
// version a builder reports against the releases that brought features (several
// outputs need v0.13), so kiln reports this one, with its own version as build
// metadata: "v0.34.2+kiln.dev".
const apiVersion = "v0.34.2"

func (s *Server) version() *apitypes.BuildkitVersion {
	return &apitypes.BuildkitVersion{
		Package:  "github.com/kiln-build/kiln",
		Version:  apiVersion + "+kiln." + strings.TrimPrefix(s.cfg.Version, "v"),
		Revision: s.cfg.Version,
	}
}

// Info reports the server's version (buildx inspect, buildctl debug info).
func (c *control) Info(ctx context.Context, _ *controlapi.InfoRequest) (*controlapi.InfoResponse, error) {
	return &controlapi.InfoResponse{BuildkitVersion: c.s.version()}, nil
}

// Session runs a client session over a Control.Session stream: the remote driver's and
// buildctl's way to attach one (the docker driver uses POST /session).
func (c *control) Session(stream grpc.BidiStreamingServer[controlapi.BytesMessage, controlapi.BytesMessage]) error {
	conn, closeCh, md := grpchijack.Hijack(stream)
	defer conn.Close()
	go func() {
		<-closeCh
		conn.Close()
	}()
	return c.s.sessions.HandleConn(bklog.WithLogger(stream.Context(), c.s.bkLog), conn, md)
}

// Status streams a solve's progress. It may be called before the Solve it follows
// and ends when that Solve has returned.
func (c *control) Status(req *controlapi.StatusRequest, stream grpc.ServerStreamingServer[controlapi.StatusResponse]) error {
	if req.Ref == "" {
		return codeError(codes.InvalidArgument, "Status needs the ref of a solve")
	}
	j := c.s.jobs.get(req.Ref)
	defer c.s.jobs.forgetUnstarted(j)
	return j.status.follow(stream.Context(), stream.Send)
}

// Solve runs one build. With the dockerfile.v0 frontend the build is the request's
// own; with none, the client runs a gateway client that builds through LLBBridge.Solve
// and hands back its result with LLBBridge.Return, which this call waits for. Either
// way the result then goes to the request's exporters.
func (c *control) Solve(ctx context.Context, req *controlapi.SolveRequest) (*controlapi.SolveResponse, error) {
	if req.Ref == "" {
		return nil, codeError(codes.InvalidArgument, "Solve needs a ref")
	}
	s := c.s
	j := s.jobs.get(req.Ref)
	if !j.start(req) {
		return nil, codeError(codes.AlreadyExists, "a solve with ref %s is running", req.Ref)
	}
	defer func() {
		j.release()
		j.status.close()
		s.jobs.remove(j)
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(j.ctx, func() { cancel(context.Cause(j.ctx)) })
	defer stop()

	if req.Definition != nil && len(req.Definition.Def) > 0 {
		return nil, codeError(codes.Unimplemented, "kiln builds Dockerfiles (frontend dockerfile.v0); it does not run LLB definitions")
	}
	var b *built
	switch req.Frontend {
	case dockerfileFrontend:
		var err error
		if b, err = s.build(ctx, j, req.FrontendAttrs, req.Session); err != nil {
			return nil, err
		}
		defer b.release()
	case "":
		ret, err := j.waitReturn(ctx)
		if err != nil {
			return nil, err
		}
		if ret.Error != nil && ret.Error.Code != 0 {
			return nil, gatewayError(ret.Error)
		}
		if b, err = j.returnedResult(ret); err != nil {
			return nil, codeError(codes.InvalidArgument, "%w", err)
		}
		if b == nil {
			// A gateway client that returned nothing: buildx's capabilities probe.
			return &controlapi.SolveResponse{}, nil
		}
	default:
		if !builtinSyntax(req.Frontend, req.FrontendAttrs) {
			return nil, codeError(codes.Unimplemented, "%s", frontendError(req.Frontend, req.FrontendAttrs))
		}
		var err error
		if b, err = s.build(ctx, j, req.FrontendAttrs, req.Session); err != nil {
			return nil, err
		}
		defer b.release()
	}
	var resp map[string]string
	err := b.exported(func() (err error) {
		resp, err = s.export(ctx, j, req, b)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &controlapi.SolveResponse{ExporterResponse: resp}, nil
}

// builtinSyntax reports whether a gateway.v0 request asks for Docker's own Dockerfile
// frontend (# syntax=docker/dockerfile:1 and its kin), which kiln's Dockerfile support
// stands in for.
func builtinSyntax(frontend string, attrs map[string]string) bool {
	if frontend != "gateway.v0" {
		return false
	}
	src := attrs["source"]
	if src == "" {
		src = attrs["cmdline"]
	}
	return syntaxRef(src) != ""
}

// syntaxRef returns src when it names Docker's own Dockerfile frontend, which kiln's
// Dockerfile support stands in for (builder.BuiltinFrontend decides, for every door),
// or "" when src names another frontend.
func syntaxRef(src string) string {
	if builder.BuiltinFrontend(src) {
		return src
	}
	return ""
}

// frontendError explains why a frontend other than kiln's own cannot be used.
func frontendError(frontend string, attrs map[string]string) string {
	if frontend == "gateway.v0" {
		src := attrs["source"]
		if src == "" {
			src = attrs["cmdline"]
		}
		return builder.FrontendError(src).Error()
	}
	return fmt.Sprintf("frontend %q is not supported: kiln builds Dockerfiles (dockerfile.v0)", frontend)
}

// ListenBuildHistory answers at once with nothing: kiln keeps no BuildKit history,
// and buildx only reads it to print a link after the build.
func (c *control) ListenBuildHistory(req *controlapi.BuildHistoryRequest, stream grpc.ServerStreamingServer[controlapi.BuildHistoryEvent]) error {
	return codeError(codes.Unimplemented, "kiln keeps no build history")
}
