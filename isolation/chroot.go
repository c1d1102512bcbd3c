package isolation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The chroot child is this same binary, re-executed: argv[0] names it in ps, and the
// environment variable tells Init (and a Run that finds itself in a child whose main
// forgot Init) what it is.
const (
	childArg0 = "kiln-chroot-child"
	childEnv  = "_KILN_ISOLATION_CHILD"
)

// File descriptors of the child: 3 carries the childSpec in, 4 carries a childStatus
// out and is closed by a successful exec.
const (
	specFD   = 3
	statusFD = 4
)

// childSpec is everything the child needs, sent as JSON through a pipe rather than
// argv so that the command and environment (build args, tokens) never show up in ps.
type childSpec struct {
	Root     string
	Args     []string
	Env      []string
	Dir      string
	UID, GID uint32
	Groups   []uint32
	Hostname string
	Mounts   []mountSpec
	// NoNetwork: the child is in a new network namespace and brings loopback up.
	NoNetwork bool `json:",omitempty"`
	// Insecure: the child keeps its capabilities, without no_new_privs or seccomp.
	Insecure bool `json:",omitempty"`
	// Unconfined: no seccomp filter and no no_new_privs (WithSeccompUnconfined).
	Unconfined bool `json:",omitempty"`
	// Rlimits are set before the capabilities are dropped (raising a hard limit
	// needs CAP_SYS_RESOURCE); ShmSize sizes /dev/shm (0: 64MiB).
	Rlimits []rlimit `json:",omitempty"`
	ShmSize int64    `json:",omitempty"`
	// InPlace: the child serves the in-place runner. It stays on "/" (Root is unused),
	// covers Hide in its own mount namespace and mounts a /proc of its PID namespace
	// where the kernel allows.
	InPlace  bool     `json:",omitempty"`
	Hide     []string `json:",omitempty"`
	KeepProc bool     `json:",omitempty"`
}

// mountKind says what the child mounts on a mountSpec's target.
type mountKind string

const (
	mountProc mountKind = "proc"  // a fresh procfs with the kernel knobs read-only
	mountDev  mountKind = "dev"   // a tmpfs with the minimal device set, pts, shm
	mountSys  mountKind = "sys"   // sysfs, read-only
	mountFile mountKind = "file"  // Source bind-mounted onto Target
	mountDir  mountKind = "dir"   // the directory Source bind-mounted (recursively) onto Target
	mountTmp  mountKind = "tmpfs" // an empty tmpfs of Size bytes (0: default)
)

type mountSpec struct {
	Kind     mountKind
	Target   string // host path inside the root, symlinks already resolved
	Source   string `json:",omitempty"`
	ReadOnly bool   `json:",omitempty"` // mountFile and mountDir only
	Size     int64  `json:",omitempty"` // mountTmp only
}

// childStatus is a report from the child: first {Ready} once Init has taken over (so
// a binary that forgot Init cannot pass for a successful RUN), then, only if something
// failed before or at exec, the failure.
type childStatus struct {
	Ready   bool   `json:",omitempty"`
	Message string `json:",omitempty"`
	Code    int    `json:",omitempty"` // 126/127: the command could not be executed
	// Errno is execve's error number when the exec itself failed.
	Errno unix.Errno `json:",omitempty"`
}

// ChrootOption configures NewChroot.
type ChrootOption func(*chrootRunner)

// WithHostname sets the hostname seen by RUN (in its own UTS namespace) and maps it to
// 127.0.0.1 in its /etc/hosts. By default RUN sees the host's name, but cannot change it.
func WithHostname(name string) ChrootOption {
	return func(r *chrootRunner) { r.hostname = name }
}

// WithResolvConf sets the file RUN sees as /etc/resolv.conf (default: the host's).
// RUN gets a private copy: writes to it are allowed and discarded, as under Docker.
func WithResolvConf(path string) ChrootOption {
	return func(r *chrootRunner) { r.resolvConf = path }
}

// WithHosts sets the file RUN sees as /etc/hosts (default: the host's), copied like
// WithResolvConf.
func WithHosts(path string) ChrootOption {
	return func(r *chrootRunner) { r.hosts = path }
}

// WithCgroups gives every RUN a cgroup of its own under c, carrying the memory, pids
// and cpu limits of its Process. Without it such limits are refused.
func WithCgroups(c *Cgroups) ChrootOption {
	return func(r *chrootRunner) { r.cgroups = c }
}

// WithScratchDir sets where the per-RUN copies of resolv.conf and hosts are kept
// (default: os.TempDir()). It must be outside the root.
func WithScratchDir(dir string) ChrootOption {
	return func(r *chrootRunner) { r.scratchDir = dir }
}

// WithSeccompUnconfined runs RUN without Docker's default seccomp profile and without
// no_new_privs, as `docker run --security-opt seccomp=unconfined` does. For debugging a
// build the filter breaks; never for untrusted Dockerfiles.
func WithSeccompUnconfined() ChrootOption {
	return func(r *chrootRunner) { r.unconfined = true }
}

type chrootRunner struct {
	unconfined bool
	self       string // the binary to re-execute: /proc/self/exe, another in tests
	root       string
	hostname   string
	resolvConf string
	hosts      string
	scratchDir string
	cgroups    *Cgroups
}

// NewChroot returns a Runner that executes processes with root as their "/", in new
// mount, PID, UTS and IPC namespaces (the network is the host's). It needs root:
// CAP_SYS_ADMIN for the namespaces and mounts, CAP_SYS_CHROOT, CAP_SETUID/SETGID.
// The binary must call Init first thing in main (and in TestMain).
func NewChroot(root string, opts ...ChrootOption) Runner {
	r := &chrootRunner{self: "/proc/self/exe", root: root, resolvConf: "/etc/resolv.conf", hosts: "/etc/hosts"}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *chrootRunner) Run(ctx context.Context, p Process) (err error) {
	if len(p.Args) == 0 {
		return errors.New("run: empty command")
	}
	if os.Getenv(childEnv) != "" {
		// Re-executed without Init intercepting: running on would re-execute again.
		return errors.New("isolation: chroot child did not run: isolation.Init must be the first call in main (and TestMain)")
	}
	root, err := filepath.Abs(r.root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return fmt.Errorf("build root %s: %w", r.root, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("build root %s is not a directory", root)
	}
	var cg *runCgroup
	if names := p.Limits.NeedsCgroup(); len(names) > 0 {
		if r.cgroups == nil {
			return fmt.Errorf("%s: resource limits need a writable cgroup, and this kiln has none "+
				"(see docs/security.md, \"Resource limits\")", strings.Join(names, ", "))
		}
		if cg, err = r.cgroups.newRunCgroup(p.Limits); err != nil {
			return err
		}
		defer func() {
			if cerr := cg.remove(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}

	scratch, err := os.MkdirTemp(r.scratchDir, "kiln-run-")
	if err != nil {
		return fmt.Errorf("run scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	sc := newScaffold(root)
	defer func() {
		if uerr := sc.undo(); uerr != nil && err == nil {
			err = fmt.Errorf("restore build root %s: %w", root, uerr)
		}
	}()
	mounts, err := r.planMounts(sc, scratch)
	if err == nil {
		mounts, err = planProcessMounts(sc, mounts, p.Mounts)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (chroot isolation needs root; inside an unprivileged container use --isolation=inplace)", err)
	}
	if err != nil {
		return err
	}
	spec := childSpec{
		Root: root, Args: p.Args, Env: p.Env, Dir: p.Dir,
		UID: p.UID, GID: p.GID, Groups: p.Groups,
		Hostname: r.hostname, Mounts: mounts,
		NoNetwork: p.NoNetwork, Insecure: p.Insecure, Unconfined: r.unconfined,
		Rlimits: p.Limits.rlimits(), ShmSize: p.Limits.ShmSize,
	}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if spec.NoNetwork {
		flags |= unix.CLONE_NEWNET
	}
	return runChild(ctx, r.self, spec, &syscall.SysProcAttr{Cloneflags: flags}, cg, p.Stdout, p.Stderr)
}

// planMounts creates the mount points the root lacks and the private copies of
// resolv.conf and hosts, and returns what the child is to mount.
func (r *chrootRunner) planMounts(sc *scaffold, scratch string) ([]mountSpec, error) {
	var mounts []mountSpec
	for _, m := range []struct {
		path string
		kind mountKind
	}{{"/proc", mountProc}, {"/dev", mountDev}, {"/sys", mountSys}} {
		target, err := sc.ensure(m.path, true)
		if err != nil {
			return nil, err
		}
		if target != "" {
			mounts = append(mounts, mountSpec{Kind: m.kind, Target: target})
		}
	}
	for _, f := range []struct{ path, source string }{
		{"/etc/resolv.conf", r.resolvConf},
		{"/etc/hosts", r.hosts},
	} {
		copied, err := r.copyEtcFile(f.source, filepath.Join(scratch, filepath.Base(f.path)), f.path == "/etc/hosts")
		if err != nil {
			return nil, err
		}
		if copied == "" {
			continue
		}
		target, err := sc.ensure(f.path, false)
		if err != nil {
			return nil, err
		}
		if target != "" {
			mounts = append(mounts, mountSpec{Kind: mountFile, Target: target, Source: copied})
		}
	}
	return mounts, nil
}

// planProcessMounts adds the process's own mounts to mounts, creating their mount
// points (removed again by the scaffold's undo).
func planProcessMounts(sc *scaffold, mounts []mountSpec, pm []Mount) ([]mountSpec, error) {
	for _, m := range pm {
		kind, dir := mountTmp, true
		if !m.Tmpfs {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return nil, fmt.Errorf("mount source for %s: %w", m.Target, err)
			}
			kind, dir = mountFile, fi.IsDir()
			if dir {
				kind = mountDir
			}
		}
		target, err := sc.ensure(m.Target, dir)
		if err != nil {
			return nil, err
		}
		if target == "" {
			return nil, fmt.Errorf("cannot mount on %s: a file of another type or a symbolic link is in the way, or it is the root", m.Target)
		}
		ms := mountSpec{Kind: kind, Target: target, Source: m.Source, ReadOnly: m.ReadOnly}
		if m.Tmpfs {
			ms.Source, ms.Size = "", m.TmpfsSize
		}
		mounts = append(mounts, ms)
	}
	return mounts, nil
}

// copyEtcFile copies src to dst for RUN to use; a missing source yields "" (no mount).
// For hosts, the configured hostname is mapped to 127.0.0.1 so that tools resolving
// their own name work.
func (r *chrootRunner) copyEtcFile(src, dst string, hosts bool) (string, error) {
	data, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", src, err)
	}
	if hosts && r.hostname != "" {
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		data = append(data, "127.0.0.1\t"+r.hostname+"\n"...)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return dst, nil
}

// runChild re-executes self as the isolation child, in the namespaces attr's clone
// flags (and user namespace mappings) make, and waits for it. spec.InPlace says which
// runner it serves, for the messages.
func runChild(ctx context.Context, self string, spec childSpec, attr *syscall.SysProcAttr, cg *runCgroup, stdout, stderr io.Writer) error {
	specR, specW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer specR.Close()
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer statusR.Close()
	defer statusW.Close()
	out, err := newOutputs(stdout, stderr)
	if err != nil {
		return err
	}

	cmd := exec.CommandContext(ctx, self)
	cmd.Args = []string{childArg0}
	cmd.Env = childEnviron()
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	cmd.ExtraFiles = []*os.File{specR, statusW} // fds 3 and 4
	attr.Setpgid = true
	attr.Pdeathsig = unix.SIGKILL
	cmd.SysProcAttr = attr
	// The child becomes PID 1 of its namespace; killing it takes every process of the
	// RUN with it. The group kill also covers the moment before the exec.
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	startErr := cmd.Start()
	out.closeChildEnds()
	specR.Close()
	statusW.Close()
	if startErr != nil {
		out.drain()
		if spec.InPlace {
			return fmt.Errorf("in-place isolation: cannot create the RUN's user, mount and PID namespaces (%w); "+
				"start kiln with --inplace-namespaces=off to run RUN without them (see docs/security.md)", startErr)
		}
		if errors.Is(startErr, unix.EPERM) {
			return fmt.Errorf("chroot isolation: cannot create mount and PID namespaces (%w): "+
				"it needs root with CAP_SYS_ADMIN; inside an unprivileged container use --isolation=inplace", startErr)
		}
		return fmt.Errorf("chroot isolation: start child: %w", startErr)
	}

	// The child waits for its spec before doing anything: it is moved into its cgroup
	// first, so that everything the RUN starts is born there.
	if cg != nil {
		if err := cg.add(cmd.Process.Pid); err != nil {
			_ = killGroup(cmd.Process.Pid)
			_ = cmd.Wait()
			out.drain()
			return err
		}
	}
	go func() {
		_ = json.NewEncoder(specW).Encode(spec)
		specW.Close()
	}()
	statusCh := make(chan childStatus, 1)
	go func() { statusCh <- readStatus(statusR) }()

	waitErr := cmd.Wait()
	out.drain()
	status := <-statusCh
	if ctx.Err() != nil {
		return fmt.Errorf("run %s: %w", spec.Args[0], ctx.Err())
	}
	if cg != nil {
		if hit := cg.limitHit(); hit != nil {
			return hit
		}
	}
	switch {
	case !status.Ready:
		why := "it exited 0"
		if waitErr != nil {
			why = waitErr.Error()
		}
		return fmt.Errorf("chroot isolation: the child never reported, %s (does main call isolation.Init first?)", why)
	case status.Message != "" && status.Code != 0:
		return (&startError{Message: status.Message, Code: status.Code, Errno: status.Errno}).err()
	case status.Message != "":
		if spec.InPlace {
			return fmt.Errorf("in-place isolation: %s", status.Message)
		}
		return fmt.Errorf("chroot isolation in %s: %s", spec.Root, status.Message)
	}
	if cmd.ProcessState == nil {
		return fmt.Errorf("run %s: %w", spec.Args[0], waitErr)
	}
	return exitError(cmd.ProcessState)
}

// childEnviron is the child's environment (the RUN gets spec.Env, not this). GOGC=off:
// the child lives from the package inits of the whole binary to its exec, a few MB
// allocated; collecting that garbage cost ~10 ms of CPU per RUN (perf stat, 60 runs).
func childEnviron() []string { return []string{childEnv + "=1", "GOGC=off"} }

// readStatus collects the child's reports until the pipe closes (at exec or exit).
func readStatus(r io.Reader) childStatus {
	var st childStatus
	dec := json.NewDecoder(r)
	for {
		var msg childStatus
		if err := dec.Decode(&msg); err != nil {
			break
		}
		st.Ready = st.Ready || msg.Ready
		if msg.Message != "" {
			st.Message, st.Code, st.Errno = msg.Message, msg.Code, msg.Errno
		}
	}
	_, _ = io.Copy(io.Discard, r)
	return st
}
