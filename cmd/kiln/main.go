// Command kiln builds container images from Dockerfiles without a Docker daemon.
// `kiln build` takes kaniko's executor flags; see `kiln build --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
)

// version is set at link time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	// RUN's chroot child re-executes this binary; Init takes that path before anything
	// else runs.
	isolation.Init()
	if helper, ok := credentials.HelperName(filepath.Base(os.Args[0])); ok {
		os.Exit(credentialHelper(helper, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(kanikoArgs(os.Args[0], os.Args[1:]), os.Stdout, os.Stderr, realHost()))
}

// run executes the command line args and returns the process exit code.
func run(args []string, stdout, stderr io.Writer, h host) int {
	// SIGINT and SIGTERM cancel the build, so the RUN process group is killed and the
	// state directory removed before kiln exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd := newRootCommand(stdout, stderr, h)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var re *rootlessExit
	if errors.As(err, &re) {
		return re.code // the kiln in the user namespace said everything
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return exitCode(err)
}

// exitCode maps a failure to kiln's exit status: a RUN that failed passes its own exit
// code on, as kaniko does, so CI sees the command's status; anything else is 1.
func exitCode(err error) int {
	var exit *isolation.ExitError
	if errors.As(err, &exit) && exit.Code > 0 {
		return exit.Code
	}
	return 1
}
