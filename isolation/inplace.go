package isolation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// InPlaceOption configures NewInPlace.
type InPlaceOption func(*inPlaceRunner)

type inPlaceRunner struct {
	root string // "/"; a test's directory in its place, for Process.Mounts only
	self string // the binary to re-execute for WithNamespaces: /proc/self/exe

	hidden     []string // WithHidden
	namespaces bool     // WithNamespaces
	unconfined bool     // no seccomp filter in the namespaces
	keepProc   bool     // tests: keep the inherited /proc, as in a container that masks it
}

// NewInPlace returns a Runner that executes processes directly on this machine's "/"
// (kaniko's model, for use inside an unprivileged container): no chroot, and no
// namespaces unless WithNamespaces. Each process runs in its own process group, which is killed when the process
// exits (background processes do not outlive their RUN, as under Docker) and when ctx
// ends. Changing credentials needs CAP_SETUID/CAP_SETGID.
func NewInPlace(opts ...InPlaceOption) Runner {
	r := &inPlaceRunner{root: "/", self: "/proc/self/exe"}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *inPlaceRunner) Run(ctx context.Context, p Process) (err error) {
	if len(p.Args) == 0 {
		return errors.New("run: empty command")
	}
	if p.NoNetwork && !r.namespaces {
		return errors.New("run: in-place isolation without namespaces cannot take the network away; use chroot isolation")
	}
	if err := inPlaceLimits(p.Limits); err != nil {
		return err
	}
	if len(p.Mounts) > 0 {
		sc := newScaffold(r.root)
		defer func() {
			if uerr := sc.undo(); uerr != nil && err == nil {
				err = fmt.Errorf("remove the mounts of the run: %w", uerr)
			}
		}()
		if err := placeMounts(sc, p.Mounts); err != nil {
			return err
		}
	}
	dir := p.Dir
	if dir == "" {
		dir = "/"
	}
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("working directory %q: %w", dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("working directory %q: not a directory", dir)
	}
	if r.namespaces {
		return r.runNamespaced(ctx, p, dir)
	}
	path, se := lookPath(p.Args[0], pathFromEnv(p.Env), dir)
	if se != nil {
		return se.err()
	}
	out, err := newOutputs(p.Stdout, p.Stderr)
	if err != nil {
		return err
	}

	cmd := exec.CommandContext(ctx, path)
	cmd.Args = p.Args
	cmd.Env = append([]string{}, p.Env...) // never nil: nil would inherit kiln's environment
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: credential(p)}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	startErr := cmd.Start()
	out.closeChildEnds()
	if startErr != nil {
		out.drain()
		var pe *fs.PathError
		if errors.As(startErr, &pe) && pe.Op == "chdir" {
			return fmt.Errorf("working directory %q: %w", dir, pe.Err)
		}
		return execFailure(path, startErr).err()
	}
	pgid := cmd.Process.Pid
	waitErr := cmd.Wait()
	// Docker kills what a RUN left running when its container stops; do the same to
	// the group, then collect the rest of the output.
	_ = killGroup(pgid)
	out.drain()
	if ctx.Err() != nil {
		return fmt.Errorf("run %s: %w", p.Args[0], ctx.Err())
	}
	if cmd.ProcessState == nil {
		return fmt.Errorf("run %s: %w", p.Args[0], waitErr)
	}
	return exitError(cmd.ProcessState)
}

// credential returns p's credentials, or nil when they are this process's own: setting
// them needs CAP_SETUID/CAP_SETGID, which an unprivileged container may lack.
func credential(p Process) *syscall.Credential {
	if int(p.UID) == os.Getuid() && int(p.GID) == os.Getgid() && sameGroups(p.Groups) {
		return nil
	}
	return &syscall.Credential{Uid: p.UID, Gid: p.GID, Groups: p.Groups}
}

// sameGroups reports whether groups equals this process's supplementary groups (as a
// set; order does not matter to the kernel).
func sameGroups(groups []uint32) bool {
	current, err := unix.Getgroups()
	if err != nil || len(current) != len(groups) {
		return false
	}
	have := map[uint32]bool{}
	for _, g := range current {
		have[uint32(g)] = true
	}
	for _, g := range groups {
		if !have[g] {
			return false
		}
	}
	return true
}

// inPlaceLimits refuses the limits the in-place runner cannot apply: it puts RUN in no
// cgroup and mounts no /dev/shm of its own.
func inPlaceLimits(l Limits) error {
	names := l.NeedsCgroup()
	if len(l.Ulimits) > 0 {
		names = append(names, "ulimits")
	}
	if l.ShmSize > 0 {
		names = append(names, "shmsize")
	}
	if len(names) > 0 {
		return fmt.Errorf("run: resource limits (%s) need chroot isolation; in-place isolation runs RUN under the server's own limits", strings.Join(names, ", "))
	}
	return nil
}
