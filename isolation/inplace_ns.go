package isolation

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeValue in childEnv makes Init exit 0 at once: InPlaceNamespaces starts a child in
// the namespaces a RUN would get, to learn whether the kernel allows them.
const probeValue = "probe"

// WithHidden gives the paths no RUN may read: kiln's credentials, keys, sockets and
// state. With WithNamespaces, each RUN's own mount namespace covers every one that
// exists (a directory with an empty read-only tmpfs, anything else with /dev/null);
// without, they are only recorded.
func WithHidden(paths ...string) InPlaceOption {
	return func(r *inPlaceRunner) { r.hidden = append(r.hidden, paths...) }
}

// WithNamespaces runs every process in new user, mount, PID and IPC namespaces: the
// user namespace maps every id of kiln's own one to itself (kiln's own uid and gid
// only, when kiln is not root), so files keep their owners, while the RUN's
// capabilities, reduced to Docker's default set, count only inside it. That is what
// keeps WithHidden's covers in place (no CAP_SYS_ADMIN to unmount them) and kiln's
// processes out of reach (no ptrace, /proc/<pid>/environ or /proc/<pid>/root access
// across user namespaces, no kill by PID across PID namespaces). Docker's seccomp
// profile and no_new_privs apply, as in chroot isolation, unless unconfined.
func WithNamespaces(unconfined bool) InPlaceOption {
	return func(r *inPlaceRunner) { r.namespaces, r.unconfined = true, unconfined }
}

// InPlaceNamespaces reports whether this kernel and container let kiln give an
// in-place RUN its own namespaces (WithNamespaces), by starting a child in them. A
// container runtime's seccomp profile (Docker's refuses unshare(CLONE_NEWUSER) without
// CAP_SYS_ADMIN) or user.max_user_namespaces=0 prevents it.
func InPlaceNamespaces(ctx context.Context) error {
	attr, err := inPlaceAttr()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{childArg0}
	cmd.Env = []string{childEnv + "=" + probeValue}
	attr.Pdeathsig = unix.SIGKILL
	cmd.SysProcAttr = attr
	if out, err := cmd.CombinedOutput(); err != nil {
		if len(out) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("create user, mount and PID namespaces for RUN: %w", err)
	}
	return nil
}

// runNamespaced runs p through the isolation child in its own namespaces.
func (r *inPlaceRunner) runNamespaced(ctx context.Context, p Process, dir string) error {
	attr, err := inPlaceAttr()
	if err != nil {
		return err
	}
	if p.NoNetwork {
		attr.Cloneflags |= unix.CLONE_NEWNET
	}
	spec := childSpec{
		Root: "/", Args: p.Args, Env: p.Env, Dir: dir,
		UID: p.UID, GID: p.GID, Groups: p.Groups,
		NoNetwork: p.NoNetwork, Insecure: p.Insecure, Unconfined: r.unconfined,
		InPlace: true, Hide: existingPaths(r.hidden), KeepProc: r.keepProc,
	}
	return runChild(ctx, r.self, spec, attr, nil, p.Stdout, p.Stderr)
}

// inPlaceAttr is the clone of an in-place RUN: new user, mount, PID and IPC
// namespaces (and a network namespace with only loopback for NoNetwork), the user
// namespace mapping kiln's ids to themselves.
func inPlaceAttr() (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC,
	}
	if os.Geteuid() != 0 {
		// Only a privileged writer may map more than its own ids; setgroups must
		// then be denied.
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		return attr, nil
	}
	var err error
	if attr.UidMappings, err = identityMap("/proc/self/uid_map"); err != nil {
		return nil, err
	}
	if attr.GidMappings, err = identityMap("/proc/self/gid_map"); err != nil {
		return nil, err
	}
	attr.GidMappingsEnableSetgroups = true
	return attr, nil
}

// identityMap maps every id this process's user namespace has (the first column of
// its map file) to itself.
func identityMap(file string) ([]syscall.SysProcIDMap, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	var out []syscall.SysProcIDMap
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		first, err1 := strconv.ParseUint(fields[0], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("read %s: bad line %q", file, sc.Text())
		}
		out = append(out, syscall.SysProcIDMap{ContainerID: int(first), HostID: int(first), Size: int(count)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read %s: no mapping", file)
	}
	return out, nil
}

// existingPaths resolves paths (symbolic links followed: a mount covers what it
// lands on) and keeps those that exist, never "/" itself, without duplicates.
func existingPaths(paths []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue // not there (yet): nothing to read
		}
		if real, err = filepath.Abs(real); err != nil || real == "/" || seen[real] {
			continue
		}
		seen[real] = true
		out = append(out, real)
	}
	return out
}
