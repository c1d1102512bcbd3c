package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/sshforward"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/kiln-build/kiln/builder"
)

// sessionSecrets reads RUN --mount=type=secret values from the client's session
// (docker build --secret): BuildKit's secrets provider, asked once per mount. Values
// are never stored by the server.
type sessionSecrets struct{ caller session.Caller }

// GetSecret implements builder.SecretStore.
func (s sessionSecrets) GetSecret(ctx context.Context, id string) ([]byte, error) {
	v, err := secrets.GetSecret(ctx, s.caller, id)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, fmt.Errorf("secret %s: %w", id, builder.ErrSecretNotFound)
	}
	return v, err
}

// sessionSSH forwards RUN --mount=type=ssh connections to the client's SSH agents
// (docker build --ssh default): one ForwardAgent stream per connection the RUN opens.
type sessionSSH struct{ caller session.Caller }

// CheckSSH implements builder.SSHAgents.
func (s sessionSSH) CheckSSH(ctx context.Context, id string) error {
	err := sshforward.CheckSSHID(ctx, s.caller, id)
	if err == nil {
		return nil
	}
	if c := grpcerrors.Code(err); c == codes.NotFound || c == codes.Unimplemented {
		return fmt.Errorf("ssh %s: %w", id, builder.ErrSSHNotFound)
	}
	return fmt.Errorf("ssh %s: %w", id, err)
}

// DialSSH implements builder.SSHAgents: one end of a pipe whose other end is copied
// to and from a ForwardAgent stream of the session.
func (s sessionSSH) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	ctx = metadata.NewOutgoingContext(s.caller.Context(ctx), metadata.MD{sshforward.KeySSHID: []string{id}})
	stream, err := sshforward.NewSSHClient(s.caller.Conn()).ForwardAgent(ctx)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", id, err)
	}
	local, remote := net.Pipe()
	go func() {
		_ = sshforward.Copy(ctx, remote, stream, stream.CloseSend)
		remote.Close()
	}()
	return local, nil
}
