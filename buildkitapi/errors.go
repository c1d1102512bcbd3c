package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/grpcerrors"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/builder"
)

// dockerfileLanguage is the language BuildKit's error sources name for a Dockerfile.
const dockerfileLanguage = "Dockerfile"

// solveError is a failed build's error as BuildKit's clients expect it, from the
// Dockerfile named name with content dockerfile:
//   - a cancelled build is Canceled;
//   - a failed RUN says what BuildKit says, `process "/bin/sh -c …" did not complete
//     successfully: exit code: N`, and carries the exit code as BuildKit's typed exit
//     error (gatewaypb.ExitError), which the gRPC interceptors send as a detail;
//   - an error the builder places on a Dockerfile line (a RUN's too) carries
//     BuildKit's error source, the Dockerfile and the line range, so the CLI prints
//     the Dockerfile around that line before the error.
//
// Anything else is returned as it is: the CLI prints its message after "failed to
// solve:".
func solveError(err error, dockerfile []byte, name string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return grpcerrors.WrapCode(err, codes.Canceled)
	}
	var ie *builder.InstructionError
	located := errors.As(err, &ie) && ie.Line > 0
	var re *builder.RunError
	switch {
	case errors.As(err, &re):
		err = runError(re)
	case located:
		err = parseError(err, ie)
	}
	if !located || len(dockerfile) == 0 {
		return err
	}
	if name == "" {
		name = "Dockerfile"
	}
	end := ie.EndLine
	if end < ie.Line {
		end = ie.Line
	}
	return errdefs.WithSource(err, &errdefs.Source{
		Info: &pb.SourceInfo{Filename: name, Data: dockerfile, Language: dockerfileLanguage},
		Ranges: []*pb.Range{{
			Start: &pb.Position{Line: int32(ie.Line)},
			End:   &pb.Position{Line: int32(end)},
		}},
	})
}

// runError is a failed RUN in BuildKit's words, with its exit code typed as
// BuildKit's executor types it.
func runError(re *builder.RunError) error {
	exit := &gatewaypb.ExitError{ExitCode: uint32(re.Code)}
	if re.Reason != "" {
		// The command never started: say why, as the classic text does.
		exit.Err = fmt.Errorf("exit code: %d: %s", re.Code, re.Reason)
	}
	return fmt.Errorf("process %q did not complete successfully: %w", strings.Join(re.Args, " "), exit)
}

// parseError is a Dockerfile parse error (one the builder places on a line but on no
// instruction) in BuildKit's words, "dockerfile parse error on line N: …", without the
// builder's "Dockerfile:N:" prefix. Errors of an instruction keep the builder's text,
// which names the file, the line and the instruction.
func parseError(err error, ie *builder.InstructionError) error {
	switch {
	case ie.Instruction != "":
		return err
	case strings.HasPrefix(ie.Err.Error(), "dockerfile parse error"):
		return ie.Err
	}
	return fmt.Errorf("dockerfile parse error on line %d: %w", ie.Line, ie.Err)
}

// gatewayError is the error a gateway client handed back with LLBBridge.Return, as
// Control.Solve answers it: decoded as BuildKit's clients decode errors, so that the
// error interceptor sends its message as it is (not behind "rpc error: code = …") and
// its details (exit code, source) with it.
func gatewayError(st *spb.Status) error {
	return grpcerrors.FromGRPC(status.ErrorProto(st))
}

// codeError is an error with a gRPC code, made as BuildKit makes them so that the
// client prints the message once (a status.Error's text would be sent as its message,
// "rpc error: code = … desc = …" and all).
func codeError(code codes.Code, format string, args ...any) error {
	return grpcerrors.WrapCode(fmt.Errorf(format, args...), code)
}
