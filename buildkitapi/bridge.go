package buildkitapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/buildkit/client/buildid"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	apicapspb "github.com/moby/buildkit/util/apicaps/pb"
	"google.golang.org/grpc/codes"
)

// bridge is BuildKit's LLBBridge service as a gateway client (buildx) uses it: Ping for
// capabilities, Solve with the dockerfile.v0 frontend, Return with the result. Every
// call carries its solve's ref in the buildkit-controlapi-buildid metadata.
type bridge struct {
	gatewaypb.UnimplementedLLBBridgeServer
	s *Server
}

// bridgeCaps are the gateway capabilities kiln implements; a client must see return
// and proto.refarray or it falls back to a protocol kiln does not speak.
var bridgeCaps = []apicaps.CapID{
	gatewaypb.CapSolveBase,
	gatewaypb.CapReturnResult,
	gatewaypb.CapProtoRefArray,
	gatewaypb.CapGatewaySolveMetadata,
}

// Ping reports the capabilities kiln implements and its worker.
func (b *bridge) Ping(ctx context.Context, _ *gatewaypb.PingRequest) (*gatewaypb.PongResponse, error) {
	caps := make([]*apicapspb.APICap, len(bridgeCaps))
	for i, c := range bridgeCaps {
		caps[i] = &apicapspb.APICap{ID: string(c), Enabled: true}
	}
	// Of the LLB capabilities only the one about exporters applies to kiln, which
	// runs no LLB: a solve may have several outputs.
	llb := []*apicapspb.APICap{{ID: string(pb.CapMultipleExporters), Enabled: true}}
	return &gatewaypb.PongResponse{FrontendAPICaps: caps, LLBCaps: llb}, nil
}

// job returns the solve a bridge call belongs to.
func (b *bridge) job(ctx context.Context) (*job, error) {
	id := buildid.FromIncomingContext(ctx)
	if id == "" {
		return nil, codeError(codes.InvalidArgument, "no build id in the call's metadata (buildkit-controlapi-buildid)")
	}
	return b.s.jobs.get(id), nil
}

// Solve builds a Dockerfile for the gateway client. The result stays with the job
// until its Control.Solve exports it.
func (b *bridge) Solve(ctx context.Context, req *gatewaypb.SolveRequest) (*gatewaypb.SolveResponse, error) {
	j, err := b.job(ctx)
	if err != nil {
		return nil, err
	}
	creq, err := j.waitStarted(ctx)
	if err != nil {
		return nil, err
	}
	if req.Definition != nil && len(req.Definition.Def) > 0 {
		return nil, codeError(codes.Unimplemented, "kiln builds Dockerfiles (frontend dockerfile.v0); it does not run LLB definitions")
	}
	switch {
	case req.Frontend == dockerfileFrontend, builtinSyntax(req.Frontend, req.FrontendOpt):
	case req.Frontend == "":
		return nil, codeError(codes.InvalidArgument, "a gateway Solve without a frontend or definition has nothing to build")
	default:
		return nil, codeError(codes.Unimplemented, "%s", frontendError(req.Frontend, req.FrontendOpt))
	}
	// The build runs for the solve, not for this call: a gateway client may return
	// before it reads the response, and the build's result is the job's until exported.
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(j.ctx, func() { cancel(context.Cause(j.ctx)) })
	defer stop()
	res, err := b.s.build(bctx, j, req.FrontendOpt, creq.Session)
	if err != nil {
		return nil, err
	}
	id := j.addResult(res)
	return &gatewaypb.SolveResponse{Result: &gatewaypb.Result{
		Result:   &gatewaypb.Result_Ref{Ref: &gatewaypb.Ref{Id: id}},
		Metadata: res.metadata(),
	}}, nil
}

// Return hands the gateway client's final result (or error) to the waiting Solve.
func (b *bridge) Return(ctx context.Context, req *gatewaypb.ReturnRequest) (*gatewaypb.ReturnResponse, error) {
	j, err := b.job(ctx)
	if err != nil {
		return nil, err
	}
	if !j.setReturn(req) {
		return nil, codeError(codes.FailedPrecondition, "the solve has returned already")
	}
	return &gatewaypb.ReturnResponse{}, nil
}

// Inputs answers that a Dockerfile solve has no frontend inputs.
func (b *bridge) Inputs(ctx context.Context, _ *gatewaypb.InputsRequest) (*gatewaypb.InputsResponse, error) {
	return &gatewaypb.InputsResponse{}, nil
}

// waitReturn waits for the gateway client's Return.
func (j *job) waitReturn(ctx context.Context) (*gatewaypb.ReturnRequest, error) {
	select {
	case <-j.returned:
		return j.ret, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// returnedResult is the build a Return names, nil for an empty result.
func (j *job) returnedResult(ret *gatewaypb.ReturnRequest) (*built, error) {
	if ret.Result == nil || ret.Result.Result == nil {
		return nil, nil
	}
	var id string
	switch r := ret.Result.Result.(type) {
	case *gatewaypb.Result_Ref:
		if r.Ref != nil {
			id = r.Ref.Id
		}
	case *gatewaypb.Result_RefDeprecated:
		id = r.RefDeprecated
	case *gatewaypb.Result_Refs:
		return nil, errors.New("kiln builds one platform: a result with several refs cannot be exported")
	default:
		return nil, fmt.Errorf("unsupported result type %T", r)
	}
	if id == "" {
		return nil, nil
	}
	b := j.result(id)
	if b == nil {
		return nil, fmt.Errorf("the result names ref %q, which this solve did not produce", id)
	}
	return b, nil
}
