// Command attackprobe attempts one system call a hostile RUN might try and prints the
// outcome: "ok", or the errno's name (EPERM, ...). It is built statically by
// isolation's attacker suite (TestChrootAttacks) and copied into the build root. Every
// attempt is harmless even when it succeeds: arguments are invalid where the kernel
// checks permission first, so a missing refusal shows as EINVAL or EFAULT, not as a
// changed host.
package main

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attackprobe ATTEMPT [ARG]")
		os.Exit(2)
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	fmt.Println(result(attempt(os.Args[1], arg)))
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(unix.Errno); ok {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func errno(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func attempt(name, arg string) error {
	switch name {
	case "ptrace": // attach to a PID (the server's, as the host numbers it)
		pid, _ := strconv.Atoi(arg)
		return unix.PtraceAttach(pid)
	case "procmem": // write another process's memory
		f, err := os.OpenFile("/proc/"+arg+"/mem", os.O_RDWR, 0)
		if err != nil {
			return err.(*os.PathError).Err
		}
		f.Close()
		return nil
	case "chroot-escape": // the classic escape of a chroot, then read arg
		if err := os.MkdirAll("/tmp/escape", 0o755); err != nil {
			return err
		}
		if err := unix.Chroot("/tmp/escape"); err != nil {
			return err
		}
		for i := 0; i < 64; i++ {
			_ = unix.Chdir("..")
		}
		if err := unix.Chroot("."); err != nil {
			return err
		}
		data, err := os.ReadFile(arg)
		if err != nil {
			return err.(*os.PathError).Err
		}
		return fmt.Errorf("ESCAPED: %s", data)
	case "unshare-user":
		return unix.Unshare(unix.CLONE_NEWUSER)
	case "unshare-mount":
		return unix.Unshare(unix.CLONE_NEWNS)
	case "unshare-net":
		return unix.Unshare(unix.CLONE_NEWNET)
	case "clone-user": // clone(2) with namespace flags, not unshare(2)
		_, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_NEWUSER|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		if e == 0 {
			// Only the child gets here with pid 0, and exits at once.
			os.Exit(0)
		}
		return errno(e)
	case "mount-tmpfs":
		return unix.Mount("none", "/tmp", "tmpfs", 0, "")
	case "pivot_root":
		return unix.PivotRoot("/tmp", "/tmp")
	case "raw-socket": // CAP_NET_RAW, which Docker grants to root
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "vsock":
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "init_module": // a NULL image: EFAULT if ever allowed
		_, _, e := unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(&[]byte{0}[0])))
		return errno(e)
	case "finit_module":
		_, _, e := unix.Syscall(unix.SYS_FINIT_MODULE, ^uintptr(0), 0, 0)
		return errno(e)
	case "sethostname":
		return unix.Sethostname([]byte("attacker"))
	case "keyctl":
		_, err := unix.AddKey("user", "kiln-attack", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	case "reboot": // wrong magic: EINVAL if ever allowed
		_, _, e := unix.Syscall6(unix.SYS_REBOOT, 1, 2, 3, 0, 0, 0)
		return errno(e)
	case "clock_settime": // an invalid time: EINVAL if ever allowed
		ts := unix.Timespec{Sec: 1, Nsec: 2e9}
		return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
	case "swapon":
		_, _, e := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(&[]byte("/nonexistent\x00")[0])), 0, 0)
		return errno(e)
	case "perf_event_open": // a zeroed attribute: EINVAL if ever allowed
		var attr unix.PerfEventAttr
		_, err := unix.PerfEventOpen(&attr, 0, -1, -1, 0)
		return err
	case "bpf":
		_, _, e := unix.Syscall(unix.SYS_BPF, 0, 0, 0)
		return errno(e)
	case "open_by_handle_at": // "shocker": opens host files by handle
		_, _, e := unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(99), 0, 0)
		return errno(e)
	case "setns":
		return unix.Setns(0, 0)
	}
	return fmt.Errorf("unknown attempt %q", name)
}
