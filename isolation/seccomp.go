package isolation

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"unsafe"

	bpfseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The RUN sandbox's seccomp filter is Docker's default profile, taken as data from
// github.com/moby/profiles/seccomp (the package dockerd itself uses) and compiled to
// classic BPF with github.com/elastic/go-seccomp-bpf, both pure Go. The profile's
// conditions are resolved the way dockerd resolves them: "includes/excludes caps"
// against the capability set a RUN gets (dockerCapabilities), "minKernel" against the
// running kernel, "arches" against the native architecture.
//
// Where the builder cannot express what libseccomp would, the filter errs on the side of
// refusing:
//   - only the native ABI is allowed (x86_64 on amd64, aarch64 on arm64). Docker also
//     allows the i386 and x32 ABIs on amd64; here an i386 system call (int $0x80) gets
//     EPERM and an x32 one ENOSYS, so 32-bit x86 binaries do not run in RUN;
//   - a rule whose argument condition has no BPF translation here (SCMP_CMP_MASKED_EQ
//     with a non-zero expected value) is left out, so its system call falls to the
//     default action, EPERM. Docker's default profile has none today
//     (TestSeccompDefaultProfileComplete).

// seccompArchAliases maps the names of Docker's profile (libseccomp's, the kernel's) to
// the builder library's syscall table where they differ.
var seccompArchAliases = map[string]map[string]string{
	"aarch64": {"newfstatat": "fstatat"},
}

// seccompFilter is a compiled filter plus what compiling it left out.
type seccompFilter struct {
	prog    []unix.SockFilter
	dropped []string // rules not expressible here, as "name: reason"
	unknown []string // profile names this architecture does not have (as with libseccomp)
}

// dockerCapabilityNames lists dockerCapabilities by name, as profiles spell them.
func dockerCapabilityNames() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// dockerSeccompFilter compiles Docker's default profile for a process whose bounding
// set is Docker's default capability set, on this machine's architecture and kernel.
func dockerSeccompFilter() (*seccompFilter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if info.ID != arch.X86_64.ID && info.ID != arch.AARCH64.ID || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return nil, fmt.Errorf("seccomp: Docker's default profile is only compiled for amd64 and arm64, not %s (use --seccomp=unconfined to run without it)", runtime.GOARCH)
	}
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: dockerCapabilityNames()}}}
	profile, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp: resolve Docker's default profile: %w", err)
	}
	return compileSeccomp(profile, info)
}

// compileSeccomp turns a resolved OCI seccomp profile into a BPF program for info's
// architecture.
func compileSeccomp(profile *specs.LinuxSeccomp, info *arch.Info) (*seccompFilter, error) {
	if profile.DefaultAction != specs.ActErrno || profile.DefaultErrnoRet != nil && *profile.DefaultErrnoRet != uint(unix.EPERM) {
		return nil, fmt.Errorf("seccomp: default action %s is not EPERM", profile.DefaultAction)
	}
	out := &seccompFilter{}
	// Per action, per system call: its condition sets (OR), or nil for "always".
	type entry struct {
		conds []bpfseccomp.ArgumentConditions
		all   bool
	}
	byAction := map[bpfseccomp.Action]map[string]*entry{}
	actionOf := map[string]bpfseccomp.Action{}
	for _, rule := range profile.Syscalls {
		action, err := seccompAction(rule)
		if err != nil {
			return nil, err
		}
		sets, err := seccompConditions(rule.Args)
		for _, name := range rule.Names {
			if a := seccompArchAliases[info.Name][name]; a != "" {
				name = a
			}
			if _, ok := info.SyscallNames[name]; !ok {
				out.unknown = append(out.unknown, name)
				continue
			}
			if err != nil {
				out.dropped = append(out.dropped, name+": "+err.Error())
				continue
			}
			if prev, ok := actionOf[name]; ok && prev != action {
				return nil, fmt.Errorf("seccomp: %s has rules with different actions", name)
			}
			actionOf[name] = action
			if byAction[action] == nil {
				byAction[action] = map[string]*entry{}
			}
			e := byAction[action][name]
			if e == nil {
				e = &entry{}
				byAction[action][name] = e
			}
			if sets == nil {
				e.all = true
			}
			e.conds = append(e.conds, sets...)
		}
	}
	policy := bpfseccomp.Policy{DefaultAction: bpfseccomp.ActionErrno}
	actions := make([]bpfseccomp.Action, 0, len(byAction))
	for a := range byAction {
		actions = append(actions, a)
	}
	// The filter is a linear scan, and the order does not change its meaning (a system
	// call has one action): allow first, in system call number order, which on x86_64
	// puts the hottest (read, write, close, fstat, mmap, ...) in front.
	sort.Slice(actions, func(i, j int) bool { return actions[i] > actions[j] })
	for _, a := range actions {
		group := bpfseccomp.SyscallGroup{Action: a}
		names := make([]string, 0, len(byAction[a]))
		for n := range byAction[a] {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool { return info.SyscallNames[names[i]] < info.SyscallNames[names[j]] })
		for _, n := range names {
			e := byAction[a][n]
			if e.all {
				group.Names = append(group.Names, n)
				continue
			}
			for _, c := range e.conds {
				group.NamesWithCondtions = append(group.NamesWithCondtions, bpfseccomp.NameWithConditions{Name: n, Conditions: c})
			}
		}
		policy.Syscalls = append(policy.Syscalls, group)
	}
	insts, err := assemblePolicy(&policy, info)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	for _, r := range raw {
		out.prog = append(out.prog, unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K})
	}
	return out, nil
}

// assemblePolicy assembles p for info, which must be the running architecture: the
// library reads it from the runtime.
func assemblePolicy(p *bpfseccomp.Policy, info *arch.Info) ([]bpf.Instruction, error) {
	native, err := arch.GetInfo("")
	if err != nil || native.ID != info.ID || native.Name != info.Name {
		return nil, fmt.Errorf("seccomp: can only assemble for the running architecture, not %s", info.Name)
	}
	insts, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return insts, nil
}

// seccompAction translates a rule's action.
func seccompAction(rule specs.LinuxSyscall) (bpfseccomp.Action, error) {
	switch rule.Action {
	case specs.ActAllow:
		return bpfseccomp.ActionAllow, nil
	case specs.ActErrno:
		errno := uint(unix.EPERM)
		if rule.ErrnoRet != nil {
			errno = *rule.ErrnoRet
		}
		if errno == 0 || errno > 0xffff {
			return 0, fmt.Errorf("seccomp: %v: errno %d out of range", rule.Names, errno)
		}
		return bpfseccomp.ActionErrno | bpfseccomp.Action(errno), nil
	case specs.ActKillProcess:
		return bpfseccomp.ActionKillProcess, nil
	case specs.ActKill, specs.ActKillThread:
		return bpfseccomp.ActionKillThread, nil
	}
	return 0, fmt.Errorf("seccomp: %v: unsupported action %s", rule.Names, rule.Action)
}

// errInexpressible marks a condition this BPF builder cannot express.
var errInexpressible = errors.New("condition not expressible")

// seccompConditions translates a rule's argument conditions into condition sets, any
// of which matches (nil: the rule is unconditional). As runc does, conditions on
// distinct arguments must all hold, while several conditions on the same argument are
// alternatives.
func seccompConditions(args []specs.LinuxSeccompArg) ([]bpfseccomp.ArgumentConditions, error) {
	if len(args) == 0 {
		return nil, nil
	}
	conds := make(bpfseccomp.ArgumentConditions, 0, len(args))
	perIndex := map[uint]int{}
	for _, a := range args {
		c := bpfseccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
		switch a.Op {
		case specs.OpEqualTo:
			c.Operation = bpfseccomp.Equal
		case specs.OpNotEqual:
			c.Operation = bpfseccomp.NotEqual
		case specs.OpLessThan:
			c.Operation = bpfseccomp.LessThan
		case specs.OpLessEqual:
			c.Operation = bpfseccomp.LessOrEqual
		case specs.OpGreaterThan:
			c.Operation = bpfseccomp.GreaterThan
		case specs.OpGreaterEqual:
			c.Operation = bpfseccomp.GreaterOrEqual
		case specs.OpMaskedEqual:
			// (arg & Value) == ValueTwo: the library's BitsNotSet is exactly that for
			// ValueTwo 0 ("none of these flags").
			if a.ValueTwo != 0 {
				return nil, fmt.Errorf("%w: masked compare with %#x", errInexpressible, a.ValueTwo)
			}
			c.Operation = bpfseccomp.BitsNotSet
		default:
			return nil, fmt.Errorf("%w: %s", errInexpressible, a.Op)
		}
		if a.Index > 5 {
			return nil, fmt.Errorf("%w: argument %d", errInexpressible, a.Index)
		}
		perIndex[a.Index]++
		conds = append(conds, c)
	}
	for _, n := range perIndex {
		if n > 1 {
			sets := make([]bpfseccomp.ArgumentConditions, len(conds))
			for i, c := range conds {
				sets[i] = bpfseccomp.ArgumentConditions{c}
			}
			return sets, nil
		}
	}
	return []bpfseccomp.ArgumentConditions{conds}, nil
}

// installSeccomp sets no_new_privs and loads the filter on the calling thread, which
// must be the one that execs: the exec'd command keeps both, and so does everything
// it starts.
func installSeccomp(f *seccompFilter) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	if f == nil {
		return nil
	}
	prog := unix.SockFprog{Len: uint16(len(f.prog)), Filter: &f.prog[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("load seccomp filter: %w", errno)
	}
	return nil
}
