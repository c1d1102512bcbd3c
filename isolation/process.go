package isolation

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Process is one RUN: Args is the final argv (the builder has already wrapped a
// shell-form command as SHELL + [cmd], e.g. ["/bin/sh", "-c", "make"]).
type Process struct {
	// Args is the argv; Args[0] is looked up in Env's PATH when it has no slash.
	Args []string
	// Env is exactly the process environment (KEY=VALUE); nothing is inherited.
	Env []string
	// Dir is the working directory as an image path ("/app"). The builder creates it
	// (WORKDIR); a missing Dir is an error, never silently created here.
	Dir string
	// UID, GID and Groups (supplementary) are the credentials the process runs with.
	UID, GID uint32
	Groups   []uint32
	// Stdout and Stderr receive the output as it is produced; nil discards it. When
	// both are the same writer it is written from one goroutine only.
	Stdout, Stderr io.Writer
	// Mounts are files and directories from outside the root, and tmpfs, that the
	// process sees at image paths (RUN --mount). After the run, their targets and the
	// directories created for them are gone from the root again.
	Mounts []Mount

	// NoNetwork runs the process in a network namespace of its own where only the
	// loopback interface is up (RUN --network=none). The chroot runner supports it;
	// the in-place runner, which creates no namespaces, refuses it.
	NoNetwork bool
	// Insecure keeps every capability of the builder in the process's bounding set
	// instead of Docker's default set (RUN --security=insecure).
	Insecure bool
	// Limits are the resource limits of the process and everything it starts. The
	// chroot runner applies them (cgroup limits only when given WithCgroups); the
	// in-place runner refuses them.
	Limits Limits
}

// Mount makes a regular file, a unix socket or a directory from outside the build root,
// or an empty tmpfs, appear at an image path for the duration of one run. The chroot
// runner bind-mounts Source (a directory recursively) over a mount point in its private
// mount namespace, so the content never enters the root. The in-place runner, which
// cannot mount, places a copy of a regular file (with Source's mode and owner) or a
// link to a socket at Target and removes it afterwards; Target must not exist there.
// In place, directories and tmpfs are refused (see ErrMountNeedsChroot).
type Mount struct {
	// Source is the host path; its mode and owner are what the process sees.
	Source string
	// Target is the absolute image path, resolved inside the root.
	Target string
	// ReadOnly makes a bind mount read-only (chroot only; an in-place copy is as
	// writable as Source's mode says, and is discarded).
	ReadOnly bool
	// Tmpfs mounts an empty tmpfs at Target instead (Source is unused), of at most
	// TmpfsSize bytes (0: the kernel's default, half the memory).
	Tmpfs     bool
	TmpfsSize int64
}

// ErrMountNeedsChroot is what the in-place runner returns for a Mount of a directory
// or a tmpfs: without a mount namespace it cannot keep their content out of the root.
var ErrMountNeedsChroot = errors.New("in-place isolation cannot mount a directory or a tmpfs (use --isolation=chroot)")

// Runner executes processes inside one build root. Runs on the same root must not
// overlap: a chroot runner creates and removes missing mount points in the root.
type Runner interface {
	// Run starts p, streams its output, and waits for it. It returns nil on exit
	// code 0, an error wrapping *ExitError when the process fails, or an error wrapping
	// ctx.Err() when ctx ends first (the process and everything it started is killed).
	Run(ctx context.Context, p Process) error
}

// ExitError reports a process that exited non-zero or was killed by a signal. Failures
// to start the command are ExitErrors too, with Docker's codes: 127 when Args[0] is not
// found, 126 when it cannot be executed.
type ExitError struct {
	// Code is the exit code; 128+n for death by signal n, as a shell reports it.
	Code int
	// Signal names the fatal signal ("SIGKILL"), empty for a normal exit.
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("exit code %d (killed by %s)", e.Code, e.Signal)
	}
	return fmt.Sprintf("exit code %d", e.Code)
}
