package isolation

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// run executes p in root with the chroot runner and returns stdout, stderr and error.
func runChroot(t *testing.T, root string, p Process, opts ...ChrootOption) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	p.Stdout, p.Stderr = &stdout, &stderr
	if p.Env == nil {
		p.Env = []string{"PATH=/bin"}
	}
	err := NewChroot(root, opts...).Run(context.Background(), p)
	requireNoMountsUnder(t, root)
	return stdout.String(), stderr.String(), err
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func TestChrootRun(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name       string
		args       []string
		env        []string
		dir        string
		wantStdout string
		wantStderr string
		wantCode   int    // 0: success
		wantSignal string // with wantCode
		wantErr    string // substring of the error
	}{
		{name: "shell form", args: sh("echo hello"), wantStdout: "hello\n"},
		{name: "stderr", args: sh("echo oops >&2"), wantStderr: "oops\n"},
		{name: "exit code", args: sh("exit 3"), wantCode: 3},
		// PID 1 ignores even SIGKILL from inside its namespace, as in Docker: only a
		// child's death shows, as the shell's code.
		{name: "PID 1 ignores kill", args: sh("kill -9 $$; sh -c 'kill -9 $$'; exit $?"), wantStderr: "Killed\n", wantCode: 137},
		{name: "exec form uses PATH", args: []string{"echo", "hi", "there"}, wantStdout: "hi there\n"},
		{name: "no PATH falls back to the default", args: []string{"echo", "x"}, env: []string{"A=b"}, wantStdout: "x\n"},
		{name: "missing binary", args: []string{"nope"}, wantCode: 127, wantErr: `exec: "nope": executable file not found in $PATH`},
		{name: "missing path", args: []string{"/bin/nope"}, wantCode: 127, wantErr: `exec: "/bin/nope": no such file or directory`},
		{name: "not executable", args: []string{"plain"}, wantCode: 126, wantErr: "permission denied"},
		{name: "environment is exact", args: []string{"env"}, env: []string{"PATH=/bin", "FOO=bar baz"}, wantStdout: "PATH=/bin\nFOO=bar baz\n"},
		{name: "working directory", args: []string{"pwd"}, dir: "/tmp", wantStdout: "/tmp\n"},
		{name: "missing working directory", args: []string{"pwd"}, dir: "/nope", wantErr: `working directory "/nope": no such file or directory`},
		{name: "PID 1 of a new namespace", args: sh("echo $$"), wantStdout: "1\n"},
		{name: "proc mounted", args: sh("ls /proc/1/ >/dev/null && grep -c ^Pid: /proc/self/status"), wantStdout: "1\n"},
		{name: "dev usable", args: sh("echo x >/dev/null && head -c 3 /dev/zero | wc -c && test -d /dev/pts && test -d /dev/shm && test -L /dev/fd && echo ok"), wantStdout: "3\nok\n"},
		{name: "sys read-only", args: sh("test -d /sys/kernel && ! touch /sys/x 2>/dev/null && echo ro"), wantStdout: "ro\n"},
		{name: "proc/sys read-only", args: sh("! (echo 1 >/proc/sys/kernel/panic) 2>/dev/null && echo ro"), wantStdout: "ro\n"},
		{name: "Docker's capabilities", args: sh("grep CapBnd /proc/self/status"), wantStdout: "CapBnd:\t00000000a80425fb\n"},
		{name: "no_new_privs and seccomp", args: sh("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"), wantStdout: "NoNewPrivs:\t1\nSeccomp:\t2\n"},
		{name: "seccomp refuses unshare", args: sh("unshare -m true"), wantStderr: "unshare: unshare(0x20000): Operation not permitted\n", wantCode: 1},
		{name: "only the root is visible", args: sh("ls /"), wantStdout: "bin\ndev\netc\nproc\nsys\ntmp\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := busyboxRoot(t, "tmp")
			if err := os.WriteFile(filepath.Join(root, "bin/plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := runChroot(t, root, Process{Args: tc.args, Env: tc.env, Dir: tc.dir})
			if stdout != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout, stderr, tc.wantStdout, tc.wantStderr)
			}
			checkErr(t, err, tc.wantCode, tc.wantSignal, tc.wantErr)
		})
	}
}

// checkErr compares a Run error with the wanted exit code, signal and message part.
func checkErr(t *testing.T, err error, code int, signal, msg string) {
	t.Helper()
	var ee *ExitError
	gotCode, gotSignal := 0, ""
	if errors.As(err, &ee) {
		gotCode, gotSignal = ee.Code, ee.Signal
	}
	if gotCode != code || gotSignal != signal {
		t.Errorf("error %v: code %d signal %q, want %d %q", err, gotCode, gotSignal, code, signal)
	}
	switch {
	case msg == "" && code == 0 && err != nil:
		t.Errorf("unexpected error: %v", err)
	case msg != "" && (err == nil || !strings.Contains(err.Error(), msg)):
		t.Errorf("error %v, want it to contain %q", err, msg)
	}
}

// TestChrootCredentials checks the kernel's view of the RUN process's credentials
// (/proc/self/status), not `id -G`: busybox's id prints the gid first whatever the
// supplementary groups are, which hid a RUN without any supplementary group.
func TestChrootCredentials(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		groups   []uint32
		want     string
	}{
		{name: "root", groups: []uint32{0, 10}, want: "0 0 0 0 0 0 0 0 0 10"},
		{name: "user with groups", uid: 1000, gid: 1001, groups: []uint32{1001, 2000, 3000}, want: "1000 1000 1000 1000 1001 1001 1001 1001 1001 2000 3000"},
		{name: "groups are exactly the given ones", uid: 1000, gid: 1001, groups: []uint32{3000}, want: "1000 1000 1000 1000 1001 1001 1001 1001 3000"},
		{name: "no supplementary groups", uid: 65534, gid: 65534, want: "65534 65534 65534 65534 65534 65534 65534 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := busyboxRoot(t)
			stdout, stderr, err := runChroot(t, root, Process{
				Args: sh(`echo $(sed -n 's/^\(Uid\|Gid\|Groups\)://p' /proc/self/status)`),
				UID:  tc.uid, GID: tc.gid, Groups: tc.groups,
			})
			if err != nil || stdout != tc.want+"\n" {
				t.Errorf("Uid, Gid, Groups = %q (stderr %q, err %v), want %q", stdout, stderr, err, tc.want)
			}
		})
	}
}

func TestChrootEtcFiles(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := busyboxRoot(t, "etc")
	script := "cat /etc/resolv.conf /etc/hosts; hostname; echo '10.0.0.1 extra' >>/etc/hosts && echo writable"
	stdout, stderr, err := runChroot(t, root, Process{Args: sh(script)},
		WithResolvConf(resolv), WithHosts(hosts), WithHostname("kiln-test"))
	want := "nameserver 127.0.0.53\n127.0.0.1\tlocalhost\n127.0.0.1\tkiln-test\nkiln-test\nwritable\n"
	if err != nil || stdout != want {
		t.Fatalf("got %q (stderr %q, err %v), want %q", stdout, stderr, err, want)
	}
	// RUN wrote to its private copy: neither the source nor the root changed.
	if data, _ := os.ReadFile(hosts); string(data) != "127.0.0.1\tlocalhost\n" {
		t.Errorf("source hosts file changed: %q", data)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "etc")); len(entries) != 0 {
		t.Errorf("root's /etc holds %v after the run", entries)
	}
	hostname, _ := os.Hostname()
	if hostname == "kiln-test" {
		t.Error("the host's hostname changed")
	}
}

// TestChrootLeavesRootUnchanged checks that mount points created for a RUN are gone
// afterwards and that the directories they were created in have their times back.
func TestChrootLeavesRootUnchanged(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		args  []string
	}{
		{name: "bare root", args: []string{"true"}},
		{name: "bare root, listing mount points", args: sh("ls /etc /proc /dev /sys >/dev/null")},
		{name: "etc without hosts", setup: mkdirs("etc"), args: sh("cat /etc/hosts >/dev/null")},
		{name: "all mount points present", setup: func(t *testing.T, root string) {
			mkdirs("etc", "proc", "dev", "sys")(t, root)
			for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
				if err := os.WriteFile(filepath.Join(root, f), []byte("image's own\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, args: []string{"true"}},
		{name: "etc is an absolute symlink", setup: func(t *testing.T, root string) {
			mkdirs("usr")(t, root)
			if err := os.Symlink("/usr/etc", filepath.Join(root, "etc")); err != nil {
				t.Fatal(err)
			}
		}, args: sh("test -f /usr/etc/hosts")},
		{name: "failing command", args: sh("exit 1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := busyboxRoot(t)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			// Let the clock move so that a re-created directory would show.
			time.Sleep(10 * time.Millisecond)
			before := listing(t, root)
			_, stderr, err := runChroot(t, root, Process{Args: tc.args})
			var ee *ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("run: %v (stderr %q)", err, stderr)
			}
			if diff := cmp.Diff(before, listing(t, root)); diff != "" {
				t.Errorf("root changed (-before +after):\n%s", diff)
			}
		})
	}
}

func mkdirs(dirs ...string) func(*testing.T, string) {
	return func(t *testing.T, root string) {
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestChrootKeepsWhatRunCreated checks that a directory created as a mount point stays
// when the RUN put something in it, and the change is visible to the snapshot.
func TestChrootKeepsWhatRunCreated(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	root := busyboxRoot(t)
	_, stderr, err := runChroot(t, root, Process{Args: sh("echo x >/etc/motd")})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr)
	}
	entries, err := os.ReadDir(filepath.Join(root, "etc"))
	if err != nil || len(entries) != 1 || entries[0].Name() != "motd" {
		t.Errorf("/etc holds %v (%v), want only motd", entries, err)
	}
	for _, gone := range []string{"proc", "dev", "sys"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("/%s left behind (%v)", gone, err)
		}
	}
}

func TestChrootCancel(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	root := busyboxRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The group holds a background and a foreground sleep; both must die.
	err := NewChroot(root).Run(ctx, Process{Args: sh("sleep 101 & sleep 101; echo never"), Env: []string{"PATH=/bin"}})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Run returned after %v", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	requireNoProcess(t, "sleep", "101")
	requireNoMountsUnder(t, root)
	if _, err := os.Lstat(filepath.Join(root, "proc")); !os.IsNotExist(err) {
		t.Errorf("/proc left behind after cancel (%v)", err)
	}
}

func TestChrootKillsBackgroundProcesses(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	root := busyboxRoot(t)
	start := time.Now()
	stdout, _, err := runChroot(t, root, Process{Args: sh("sleep 102 & echo started")})
	if err != nil || stdout != "started\n" {
		t.Fatalf("got %q, %v", stdout, err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run waited %v for the background process", elapsed)
	}
	requireNoProcess(t, "sleep", "102")
}

func TestChrootRootErrors(t *testing.T) {
	t.Parallel()
	err := NewChroot(filepath.Join(t.TempDir(), "missing")).Run(context.Background(), Process{Args: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing root: err = %v", err)
	}
	if err := NewChroot(t.TempDir()).Run(context.Background(), Process{}); err == nil {
		t.Error("empty command: no error")
	}
}

// TestChrootChildWithoutInit checks that a re-executed binary that does not hand over
// to Init cannot pass for a successful RUN.
func TestChrootChildWithoutInit(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	root := busyboxRoot(t)
	r := NewChroot(root).(*chrootRunner)
	r.self = "/bin/true"
	err := r.Run(context.Background(), Process{Args: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "isolation.Init") {
		t.Errorf("err = %v, want one naming isolation.Init", err)
	}
	requireNoMountsUnder(t, root)
}

// TestChrootRunChangesParent checks that a directory the RUN itself changed keeps its
// new modification time even though a mount point was created and removed in it.
func TestChrootRunChangesParent(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	root := busyboxRoot(t, "etc")
	etc := filepath.Join(root, "etc")
	before, err := os.Stat(etc)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, _, err := runChroot(t, root, Process{Args: sh("touch /etc/new")}); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(etc)
	if err != nil {
		t.Fatal(err)
	}
	if after.ModTime().Equal(before.ModTime()) {
		t.Error("/etc's mtime was restored although the RUN created /etc/new in it")
	}
	entries, _ := os.ReadDir(etc)
	if len(entries) != 1 || entries[0].Name() != "new" {
		t.Errorf("/etc holds %v, want only new", entries)
	}
}
