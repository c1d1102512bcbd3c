package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/kiln-build/kiln/credentials"
)

// credentialHelper is kiln run as docker-credential-ecr-login, -gcr or -acr-env, the
// credential helpers kaniko's image ships: kiln's image links those names to kiln
// (scripts/image.sh), so a docker config naming one of them works after a switch from
// kaniko, answered by kiln's built-in cloud keychains (credentials.ServeHelper). It
// returns the exit code: 0, or 1 with the protocol's message on stdout ("credentials
// not found in native keychain") or an error on stderr.
func credentialHelper(helper string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: docker-credential-%s get|store|erase|list (kiln answers for this credential helper)\n", helper)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := credentials.ServeHelper(ctx, helper, args[0], stdin, stdout)
	switch {
	case err == nil:
		return 0
	case credentials.NotFound(err):
		fmt.Fprintln(stdout, err)
	default:
		fmt.Fprintf(stderr, "docker-credential-%s (kiln): %v\n", helper, err)
	}
	return 1
}
