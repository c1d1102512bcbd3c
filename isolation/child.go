package isolation

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init must be the first call in main, and in TestMain of any package whose tests use
// the chroot runner. When this process is a chroot child re-executed by Run, Init sets
// up the namespaces' view of the root and execs the RUN command, never returning;
// otherwise it returns at once.
func Init() {
	initRootless()
	beChild()
}

// init runs the chroot child as soon as this package is initialized, before most
// packages of the binary are (Go initializes packages in import-path order as their
// dependencies allow): the child execs the RUN command right away and never needs them.
// In kiln their init functions (regular expressions, protobuf registries, SDK tables)
// cost the child tens of milliseconds of CPU per RUN. Init runs it too, for binaries
// whose init order puts this package late.
func init() { beChild() }

// beChild sets up the namespaces' view of the root and execs the RUN command when
// this process is a chroot child re-executed by Run, never returning; otherwise it
// returns at once.
func beChild() {
	if len(os.Args) == 0 || os.Args[0] != childArg0 || os.Getenv(childEnv) == "" {
		return
	}
	if os.Getenv(childEnv) == probeValue {
		os.Exit(0) // InPlaceNamespaces: the namespaces were made
	}
	// Credentials, pdeathsig and the bounding set are per thread; the exec happens on
	// the thread they were set on.
	runtime.LockOSThread()
	status := os.NewFile(statusFD, "status")
	unix.CloseOnExec(statusFD)
	enc := json.NewEncoder(status)
	_ = enc.Encode(childStatus{Ready: true})
	se := childMain()
	// childMain only returns on failure.
	_ = enc.Encode(childStatus{Message: se.Message, Code: se.Code, Errno: se.Errno})
	code := se.Code
	if code == 0 {
		code = 125 // Docker's code for "the runtime failed", never reported as such
	}
	os.Exit(code)
}

// childMain runs in the new namespaces as their PID 1 and ends in the exec of the
// command. It returns only when something failed.
func childMain() *startError {
	var spec childSpec
	in := os.NewFile(specFD, "spec")
	err := json.NewDecoder(in).Decode(&spec)
	in.Close()
	if err != nil {
		return setupFailure("read spec: %v", err)
	}
	// Compile the filter before touching anything, install it last.
	var filter *seccompFilter
	confine := !spec.Insecure && !spec.Unconfined
	if confine {
		if filter, err = dockerSeccompFilter(); err != nil {
			return setupFailure("%v", err)
		}
	}
	if spec.InPlace {
		if err := hidePaths(spec.Hide, !spec.KeepProc, spec.NoNetwork); err != nil {
			return setupFailure("%v", err)
		}
	} else {
		if err := mountRoot(spec); err != nil {
			return setupFailure("%v", err)
		}
		if err := enterRoot(spec.Root); err != nil {
			return setupFailure("%v", err)
		}
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir(dir); err != nil {
		return setupFailure("working directory %q: %v", dir, err)
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return setupFailure("set hostname %q: %v", spec.Hostname, err)
		}
	}
	if spec.NoNetwork {
		if err := loopbackUp(); err != nil {
			return setupFailure("%v", err)
		}
	}
	for _, rl := range spec.Rlimits {
		// syscall.Setrlimit, not unix.Setrlimit: it stops the exec from restoring Go's
		// saved RLIMIT_NOFILE over this one.
		if err := syscall.Setrlimit(rl.Resource, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return setupFailure("ulimit %d=%d:%d: %v", rl.Resource, rl.Soft, rl.Hard, err)
		}
	}
	if !spec.Insecure {
		if err := dropCapabilities(); err != nil {
			return setupFailure("%v", err)
		}
	}
	if err := setCredentials(spec.UID, spec.GID, spec.Groups); err != nil {
		return setupFailure("%v", err)
	}
	// Look the command up only now, as the user, in the root: that is what it sees.
	path, se := lookPath(spec.Args[0], pathFromEnv(spec.Env), "")
	if se != nil {
		return se
	}
	// Changing credentials cleared the parent-death signal; without it a killed kiln
	// would leave the RUN running.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return setupFailure("set parent death signal: %v", err)
	}
	// Last: no_new_privs and Docker's seccomp profile hold for the command and all it
	// starts. Nothing after this but the exec (and, on failure, the status report).
	// Only stdin, stdout and stderr reach the command: a descriptor kiln inherited
	// (a directory of the host, say) would be a way out through /proc/self/fd.
	if err := closeInheritedFDs(); err != nil {
		return setupFailure("%v", err)
	}
	if confine {
		if err := installSeccomp(filter); err != nil {
			return setupFailure("%v", err)
		}
	}
	err = unix.Exec(path, spec.Args, spec.Env)
	return execFailure(path, err)
}

// loopbackUp sets the IFF_UP flag of lo in this process's (new) network namespace,
// whose only interface it is: RUN --network=none reaches its own 127.0.0.1 and
// nothing else.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: read flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: bring up: %w", err)
	}
	return nil
}

func setupFailure(format string, args ...any) *startError {
	return &startError{Message: fmt.Sprintf(format, args...)}
}

// setgroupsDenied reports whether this user namespace forbids setgroups (one whose
// gid map an unprivileged user wrote): RUN then keeps kiln's supplementary groups.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// setCredentials switches every thread to the RUN user: supplementary groups first,
// then the group, then the user (after which nothing else may be changed).
func setCredentials(uid, gid uint32, groups []uint32) error {
	gs := make([]int, len(groups))
	for i, g := range groups {
		gs[i] = int(g)
	}
	if err := syscall.Setgroups(gs); err != nil && !setgroupsDenied() {
		return fmt.Errorf("set groups %v: %w", groups, err)
	}
	if err := syscall.Setgid(int(gid)); err != nil {
		return fmt.Errorf("set gid %d: %w", gid, err)
	}
	if err := syscall.Setuid(int(uid)); err != nil {
		return fmt.Errorf("set uid %d: %w", uid, err)
	}
	return nil
}

// closeInheritedFDs marks every descriptor above stderr close-on-exec.
func closeInheritedFDs() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Before Linux 5.11: the descriptors /proc lists (the RUN's /proc is mounted).
	entries, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close inherited descriptors: %w (and %w)", err, rerr)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
