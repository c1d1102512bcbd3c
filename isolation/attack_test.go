package isolation

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// buildAttackProbe compiles testdata/attackprobe statically for RUNs to execute.
func buildAttackProbe(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("needs the go command to build the probe: %v", err)
	}
	probe := filepath.Join(t.TempDir(), "attackprobe")
	cmd := exec.Command(goBin, "build", "-o", probe, "./testdata/attackprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	return probe
}

// hostState is what an attack must not change on the host.
func hostState(t *testing.T, secretDir string) string {
	t.Helper()
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	sysrq, _ := os.ReadFile("/proc/sys/kernel/sysrq")
	helper, _ := os.ReadFile("/sys/kernel/uevent_helper")
	return fmt.Sprintf("hostname=%s\nsysrq=%s\nuevent_helper=%s\n%s", name, sysrq, helper, listing(t, secretDir))
}

// TestChrootAttacks runs, in chroot isolation, what a hostile Dockerfile's RUN would
// try, and checks that each attempt fails the way it fails under `docker build`
// (dockerd's classic builder with its default seccomp profile and capabilities; see
// docs/security.md) and that the host is unchanged. The probe prints the errno of a
// system call; every attempt is harmless if it were to succeed.
func TestChrootAttacks(t *testing.T) {
	requireRoot(t)
	probe := buildAttackProbe(t)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("host-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := hostState(t, secretDir)
	server := fmt.Sprint(os.Getpid())
	refused := func(cmd string) string { return "(" + cmd + ") >/dev/null 2>&1 && echo DONE || echo refused" }
	tests := []struct {
		name   string
		script string
		uid    uint32
		want   string
	}{
		// The host's files.
		{name: "read via /proc/1/root", script: refused("cat /proc/1/root" + secret), want: "refused\n"},
		{name: "read via .. chain", script: refused("cat /../../../../.." + secret), want: "refused\n"},
		{name: "write via .. chain", script: refused("echo pwned >/../../../.." + secretDir + "/new"), want: "refused\n"},
		{name: "read via symlink", script: "ln -s " + secret + " /tmp/l && " + refused("cat /tmp/l"), want: "refused\n"},
		{name: "write via symlink", script: "ln -s " + secret + " /tmp/l && " + refused("echo pwned >/tmp/l"), want: "refused\n"},
		{name: "read via /proc/self/fd", script: refused("cat /proc/self/fd/*" + secret), want: "refused\n"},
		{name: "chroot escape", script: "attackprobe chroot-escape " + secret, want: "ENOENT\n"},
		// Mounts and namespaces.
		{name: "mount tmpfs", script: "attackprobe mount-tmpfs", want: "EPERM\n"},
		{name: "mount proc", script: refused("mount -t proc proc /tmp"), want: "refused\n"},
		{name: "bind mount", script: refused("mount --bind / /tmp"), want: "refused\n"},
		{name: "pivot_root", script: "attackprobe pivot_root", want: "EPERM\n"},
		{name: "unshare -U", script: refused("unshare -U true"), want: "refused\n"},
		{name: "unshare -m", script: refused("unshare -m true"), want: "refused\n"},
		{name: "unshare -n", script: refused("unshare -n true"), want: "refused\n"},
		{name: "unshare user namespace", script: "attackprobe unshare-user", want: "EPERM\n"},
		{name: "unshare mount namespace", script: "attackprobe unshare-mount", want: "EPERM\n"},
		{name: "unshare network namespace", script: "attackprobe unshare-net", want: "EPERM\n"},
		{name: "clone a user namespace", script: "attackprobe clone-user", want: "EPERM\n"},
		{name: "setns", script: "attackprobe setns", want: "EPERM\n"},
		// Other processes: the server's PID does not exist in RUN's PID namespace.
		{name: "ptrace the server", script: "attackprobe ptrace " + server, want: "ESRCH\n"},
		{name: "write the server's memory", script: "attackprobe procmem " + server, want: "ENOENT\n"},
		// Sockets: Docker grants root CAP_NET_RAW (ping works); other users get none.
		{name: "raw socket as root (as Docker)", script: "attackprobe raw-socket", want: "ok\n"},
		{name: "raw socket as a user", script: "attackprobe raw-socket", uid: 65534, want: "EPERM\n"},
		{name: "AF_VSOCK socket", script: "attackprobe vsock", want: "EPERM\n"},
		// Kernel knobs and devices.
		{name: "write /proc/sys", script: refused("cat /proc/sys/kernel/sysrq >/proc/sys/kernel/sysrq"), want: "refused\n"},
		{name: "write /proc/sysrq-trigger", script: refused("echo h >/proc/sysrq-trigger"), want: "refused\n"},
		{name: "write /sys", script: refused("cat /sys/kernel/uevent_helper >/sys/kernel/uevent_helper"), want: "refused\n"},
		{name: "open a block device made with mknod", script: "mknod /tmp/blk b 7 0 && " + refused("head -c 1 /tmp/blk"), want: "refused\n"},
		{name: "open a block device made in /dev", script: "mknod /dev/blk b 7 0 && " + refused("head -c 1 /dev/blk"), want: "refused\n"},
		{name: "init_module", script: "attackprobe init_module", want: "EPERM\n"},
		{name: "finit_module", script: "attackprobe finit_module", want: "EPERM\n"},
		{name: "insmod", script: refused("insmod /nope.ko"), want: "refused\n"},
		// The host's identity and state.
		{name: "sethostname", script: "attackprobe sethostname", want: "EPERM\n"},
		{name: "hostname command", script: refused("hostname attacker"), want: "refused\n"},
		{name: "keyctl add_key", script: "attackprobe keyctl", want: "EPERM\n"},
		{name: "reboot", script: "attackprobe reboot", want: "EPERM\n"},
		{name: "clock_settime", script: "attackprobe clock_settime", want: "EPERM\n"},
		{name: "swapon", script: "attackprobe swapon", want: "EPERM\n"},
		{name: "perf_event_open", script: "attackprobe perf_event_open", want: "EPERM\n"},
		{name: "bpf", script: "attackprobe bpf", want: "EPERM\n"},
		{name: "open_by_handle_at", script: "attackprobe open_by_handle_at", want: "EPERM\n"},
		// no_new_privs: a setuid-root binary does not make a user root (under Docker,
		// without --security-opt no-new-privileges, it does).
		{name: "setuid-root binary", script: "suidprobe raw-socket", uid: 65534, want: "EPERM\n"},
		// A process left behind dies with its RUN.
		{name: "background process", script: "sleep 3.33 & echo started", want: "started\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := busyboxRoot(t, "tmp", "etc")
			copyFile(t, probe, filepath.Join(root, "bin/attackprobe"), 0o755)
			copyFile(t, probe, filepath.Join(root, "bin/suidprobe"), 0o755)
			if err := os.Chmod(filepath.Join(root, "bin/suidprobe"), 0o755|os.ModeSetuid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
				t.Fatal(err)
			}
			p := Process{Args: sh(tc.script), UID: tc.uid, GID: tc.uid}
			stdout, stderr, err := runChroot(t, root, p)
			if err != nil || stdout != tc.want {
				t.Errorf("stdout %q, stderr %q, err %v; want stdout %q", stdout, stderr, err, tc.want)
			}
			if strings.Contains(stdout+stderr, "host-secret") {
				t.Errorf("the host's secret leaked: %q %q", stdout, stderr)
			}
		})
	}
	t.Cleanup(func() {
		requireNoProcess(t, "sleep", "3.33")
		if after := hostState(t, secretDir); after != before {
			t.Errorf("the host changed:\n%s\nwas\n%s", after, before)
		}
	})
}

// TestChrootInheritedDescriptors: a descriptor kiln inherited without close-on-exec
// (here a directory of the host) does not reach RUN, so /proc/self/fd/N leads nowhere.
func TestChrootInheritedDescriptors(t *testing.T) {
	requireRoot(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "secret"), []byte("host-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(hostDir, unix.O_RDONLY|unix.O_DIRECTORY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	stdout, stderr, err := runChroot(t, busyboxRoot(t), Process{Args: sh(fmt.Sprintf("cat /proc/self/fd/%d/secret; ls /proc/self/fd", fd))})
	if err != nil || strings.Contains(stdout, "host-secret") || stdout != "0\n1\n2\n3\n" {
		t.Errorf("stdout %q, stderr %q, err %v; want only 0-2 (and ls's own 3)", stdout, stderr, err)
	}
}

// TestChrootConcurrentRootsInvisible: a RUN sees neither another build's root nor its
// processes, even while that build's RUN is running.
func TestChrootConcurrentRootsInvisible(t *testing.T) {
	requireRoot(t)
	other := busyboxRoot(t, "tmp")
	if err := os.WriteFile(filepath.Join(other, "tmp/marker"), []byte("other-build\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Runs until the attacker is done (or the timeout).
		_ = NewChroot(other).Run(ctx, Process{Args: sh("touch /tmp/started; sleep 4.44"), Env: []string{"PATH=/bin"}})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(other, "tmp/started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other build's RUN did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	script := fmt.Sprintf("cat %s/tmp/marker /proc/*/root/tmp/marker /proc/*/root%s/tmp/marker 2>/dev/null; cat /proc/*/cmdline | tr '\\0' ' '; echo", other, other)
	stdout, stderr, err := runChroot(t, busyboxRoot(t), Process{Args: sh(script)})
	cancel()
	wg.Wait()
	if err != nil || strings.Contains(stdout, "other-build") || strings.Contains(stdout, "4.44") {
		t.Errorf("stdout %q, stderr %q, err %v: the other build is visible", stdout, stderr, err)
	}
}
