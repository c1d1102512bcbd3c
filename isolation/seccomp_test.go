package isolation

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData lays out struct seccomp_data for x/net/bpf's VM, which loads words
// big-endian: each 32-bit word is written big-endian at the offset a little-endian
// kernel would put it, so the filter's loads see the kernel's values.
func seccompData(nr uint32, auditArch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		off := 16 + 8*i
		binary.BigEndian.PutUint32(b[off:], uint32(a))
		binary.BigEndian.PutUint32(b[off+4:], uint32(a>>32))
	}
	return b
}

// TestSeccompDefaultProfile runs the compiled filter in a BPF VM and checks the
// outcome Docker's default profile gives for Docker's default capabilities.
func TestSeccompDefaultProfile(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the expectations below use amd64 system call numbers")
	}
	f, err := dockerSeccompFilter()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.dropped) != 0 {
		t.Errorf("rules left out: %v", f.dropped)
	}
	raw := make([]bpf.RawInstruction, len(f.prog))
	for i, s := range f.prog {
		raw[i] = bpf.RawInstruction{Op: s.Code, Jt: s.Jt, Jf: s.Jf, K: s.K}
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow  = unix.SECCOMP_RET_ALLOW
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	x8664 := uint32(arch.X86_64.ID)
	for _, tc := range []struct {
		name string
		nr   uint32
		arch uint32
		args []uint64
		want uint32
	}{
		{"read", unix.SYS_READ, x8664, nil, allow},
		{"execve", unix.SYS_EXECVE, x8664, nil, allow},
		{"clone a thread", unix.SYS_CLONE, x8664, []uint64{unix.CLONE_VM | unix.CLONE_THREAD}, allow},
		{"clone a user namespace", unix.SYS_CLONE, x8664, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"clone a mount namespace", unix.SYS_CLONE, x8664, []uint64{unix.CLONE_NEWNS | uint64(unix.SIGCHLD)}, eperm},
		{"clone3 (flags unreadable)", unix.SYS_CLONE3, x8664, nil, enosys},
		{"unshare", unix.SYS_UNSHARE, x8664, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"setns", unix.SYS_SETNS, x8664, nil, eperm},
		{"mount", unix.SYS_MOUNT, x8664, nil, eperm},
		{"umount2", unix.SYS_UMOUNT2, x8664, nil, eperm},
		{"pivot_root", unix.SYS_PIVOT_ROOT, x8664, nil, eperm},
		{"chroot (CAP_SYS_CHROOT)", unix.SYS_CHROOT, x8664, nil, allow},
		{"socket AF_INET", unix.SYS_SOCKET, x8664, []uint64{unix.AF_INET}, allow},
		{"socket AF_PACKET", unix.SYS_SOCKET, x8664, []uint64{unix.AF_PACKET}, allow},
		{"socket AF_VSOCK", unix.SYS_SOCKET, x8664, []uint64{unix.AF_VSOCK}, eperm},
		{"socket AF_INET, high bits set", unix.SYS_SOCKET, x8664, []uint64{1<<32 | unix.AF_INET}, eperm},
		{"personality PER_LINUX", unix.SYS_PERSONALITY, x8664, []uint64{0}, allow},
		{"personality query", unix.SYS_PERSONALITY, x8664, []uint64{0xffffffff}, allow},
		{"personality READ_IMPLIES_EXEC", unix.SYS_PERSONALITY, x8664, []uint64{0x0400000}, eperm},
		{"ptrace (kernel >= 4.8)", unix.SYS_PTRACE, x8664, nil, allow},
		{"keyctl", unix.SYS_KEYCTL, x8664, nil, eperm},
		{"add_key", unix.SYS_ADD_KEY, x8664, nil, eperm},
		{"reboot", unix.SYS_REBOOT, x8664, nil, eperm},
		{"init_module", unix.SYS_INIT_MODULE, x8664, nil, eperm},
		{"finit_module", unix.SYS_FINIT_MODULE, x8664, nil, eperm},
		{"clock_settime", unix.SYS_CLOCK_SETTIME, x8664, nil, eperm},
		{"settimeofday", unix.SYS_SETTIMEOFDAY, x8664, nil, eperm},
		{"swapon", unix.SYS_SWAPON, x8664, nil, eperm},
		{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, x8664, nil, eperm},
		{"bpf", unix.SYS_BPF, x8664, nil, eperm},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, x8664, nil, eperm},
		{"sethostname (needs CAP_SYS_ADMIN)", unix.SYS_SETHOSTNAME, x8664, nil, eperm},
		{"fchmodat2 (new)", unix.SYS_FCHMODAT2, x8664, nil, allow},
		{"i386 ABI", 1, uint32(arch.I386.ID), nil, eperm},
		{"x32 ABI", 0x40000000, x8664, nil, enosys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vm.Run(seccompData(tc.nr, tc.arch, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(got) != tc.want {
				t.Errorf("action %#x, want %#x", got, tc.want)
			}
		})
	}
}

// TestChrootSeccompOff: --seccomp=unconfined and RUN --security=insecure run without
// the filter and without no_new_privs.
func TestChrootSeccompOff(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name string
		p    Process
		opts []ChrootOption
	}{
		{name: "unconfined", opts: []ChrootOption{WithSeccompUnconfined()}},
		{name: "insecure", p: Process{Insecure: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.p
			p.Args = sh("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status")
			stdout, stderr, err := runChroot(t, busyboxRoot(t), p, tc.opts...)
			if err != nil || stdout != "NoNewPrivs:\t0\nSeccomp:\t0\n" {
				t.Errorf("stdout %q, stderr %q, err %v", stdout, stderr, err)
			}
		})
	}
}
