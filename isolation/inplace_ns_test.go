package isolation

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The in-place runner with namespaces still executes on this machine's "/": these
// tests only read, and write only in their own temporary directories.

// needInPlaceNamespaces skips where the kernel refuses the namespaces (and fails under
// KILN_TEST_WORLD_REQUIRED, where this machine kind is known to allow them).
func needInPlaceNamespaces(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if err := InPlaceNamespaces(context.Background()); err != nil {
		if os.Getenv("KILN_TEST_WORLD_REQUIRED") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestInPlaceHidden is the in-place RUN's view of kiln's secrets: a credentials file,
// a directory of keys and a socket are covered, cannot be uncovered, and kiln's own
// process is out of reach, through a fresh /proc and through an inherited one (as in
// a container that masks /proc); the same commands without the cover read the secret,
// so the test can fail.
func TestInPlaceHidden(t *testing.T) {
	needInPlaceNamespaces(t)
	const secret = "s3cr3t-KILN-TOKEN-0f9a"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "docker", "config.json")
	keys := filepath.Join(dir, "keys")
	for _, d := range []string{filepath.Dir(cfg), keys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{cfg, filepath.Join(keys, "tls.key")} {
		if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A link to the file: the cover lands on what it points to.
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(cfg, link); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	hidden := []string{link, keys, filepath.Join(dir, "missing")}

	for _, tc := range []struct {
		name     string
		script   string
		keepProc bool
		noCover  bool
		plain    bool   // no namespaces at all: kaniko's model
		wantOut  string // stdout must contain it
	}{
		{name: "file reads empty", script: "cat " + cfg + "; echo end", wantOut: "end"},
		{name: "directory is empty", script: "ls -A " + keys + "; cat " + keys + "/tls.key; echo end", wantOut: "end"},
		{name: "cover cannot be unmounted", script: "umount " + cfg + " || umount -l " + cfg + "; cat " + cfg + "; echo end", wantOut: "end"},
		{name: "writes do not reach the file", script: "echo overwritten > " + cfg + "; echo end", wantOut: "end"},
		{name: "kiln not in the PID namespace", script: "kill -0 " + pid + " || echo gone; cat /proc/" + pid + "/environ; echo end", wantOut: "gone"},
		{name: "inherited /proc: no environ", keepProc: true, script: "cat /proc/" + pid + "/environ || echo refused", wantOut: "refused"},
		{name: "inherited /proc: no root", keepProc: true, script: "cat /proc/" + pid + "/root" + cfg + " || echo refused", wantOut: "refused"},
		{name: "inherited /proc: no kill by pid", keepProc: true, script: "kill -0 " + pid + " || echo refused", wantOut: "refused"},
		{name: "control: without cover the file reads", noCover: true, script: "cat " + cfg, wantOut: secret},
		{name: "control: without namespaces environ reads", noCover: true, plain: true, script: "cat /proc/" + pid + "/environ", wantOut: "PATH="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			r := NewInPlace(WithNamespaces(false)).(*inPlaceRunner)
			r.namespaces = !tc.plain
			if !tc.noCover {
				r.hidden = hidden
			}
			r.keepProc = tc.keepProc
			err := r.Run(context.Background(), Process{
				Args: []string{"/bin/sh", "-c", tc.script}, Env: []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin"},
				Stdout: &stdout, Stderr: &stderr,
			})
			t.Logf("stdout %.200q stderr %.200q err %v", stdout.String(), stderr.String(), err)
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantOut)
			}
			if !tc.noCover && strings.Contains(stdout.String()+stderr.String(), secret) {
				t.Errorf("the RUN read the secret")
			}
		})
	}
	if b, err := os.ReadFile(cfg); err != nil || string(b) != secret {
		t.Errorf("kiln's own view of %s changed: %q, %v", cfg, b, err)
	}
}

// TestInPlaceNamespacesKeepOwners: the user namespace maps ids to themselves, so a
// RUN's files land on "/" with the owners it gave them, a USER switch works, and the
// RUN is root of its namespace with Docker's capability set and the seccomp filter.
func TestInPlaceNamespacesKeepOwners(t *testing.T) {
	needInPlaceNamespaces(t)
	dir := t.TempDir()
	var stdout bytes.Buffer
	err := NewInPlace(WithNamespaces(false)).Run(context.Background(), Process{
		Args: []string{"/bin/sh", "-c", "id -u; touch " + dir + "/a && chown 1234:2345 " + dir + "/a; grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status"},
		Env:  []string{"PATH=/usr/bin:/bin"}, Stdout: &stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	for _, want := range []string{"0\n", "CapBnd:\t00000000a80425fb", "Seccomp:\t2", "NoNewPrivs:\t1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "a"), &st); err != nil || st.Uid != 1234 || st.Gid != 2345 {
		t.Errorf("file owner %d:%d (%v), want 1234:2345", st.Uid, st.Gid, err)
	}

	stdout.Reset()
	err = NewInPlace(WithNamespaces(false)).Run(context.Background(), Process{
		Args: []string{"/bin/sh", "-c", "id -u; id -g"}, Env: []string{"PATH=/usr/bin:/bin"},
		UID: 1000, GID: 1001, Stdout: &stdout,
	})
	if err != nil || stdout.String() != "1000\n1001\n" {
		t.Errorf("USER 1000:1001: %q, %v", stdout.String(), err)
	}
}

// TestInPlaceNamespacesNoNetwork: with namespaces, network none is honoured in place.
func TestInPlaceNamespacesNoNetwork(t *testing.T) {
	needInPlaceNamespaces(t)
	var stdout bytes.Buffer
	err := NewInPlace(WithNamespaces(false)).Run(context.Background(), Process{
		Args: []string{"/bin/sh", "-c", "ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1"}, Env: []string{"PATH=/usr/bin:/bin"},
		NoNetwork: true, Stdout: &stdout,
	})
	if err != nil || strings.Fields(stdout.String()) == nil || strings.Join(strings.Fields(stdout.String()), " ") != "lo lo" {
		t.Errorf("interfaces %q, %v; want only lo, in /sys and /proc", stdout.String(), err)
	}
}
