package isolation

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mountSources writes a secret file (0400, owned by 1000:1000) and opens a unix
// socket answering "agent" to every connection, in a directory outside any root.
func mountSources(t *testing.T) (secret, sock string) {
	t.Helper()
	dir := t.TempDir()
	secret = filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secret, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("agent"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return secret, sock
}

// TestRunMounts checks Process.Mounts in both runners: the process sees the file (with
// the source's mode and owner) and can connect to the socket at their targets, and
// afterwards the root is exactly as before, targets and the directories made for them
// gone and their parents' times back. The in-place runner works in a directory in
// place of "/" here, so its commands name the targets below that directory.
func TestRunMounts(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name    string
		inPlace bool
		setup   func(t *testing.T, root string)
		target  string // of the secret; the socket goes to /run/agent.sock
		script  string // %R is the root as the process sees it
		want    string
		wantErr string
	}{
		// busybox cannot connect to a unix socket: the builder's tests do, with perl.
		{name: "chroot, new directories", target: "/run/secrets/tok",
			script: "stat -c '%a %u:%g' %R/run/secrets/tok; cat %R/run/secrets/tok; echo; test -S %R/run/agent.sock && echo socket",
			want:   "400 1000:1000\ns3cr3t\nsocket\n"},
		{name: "chroot, existing directory", setup: mkdirs("run/secrets"), target: "/run/secrets/tok",
			script: "cat %R/run/secrets/tok", want: "s3cr3t"},
		{name: "chroot, read-only", target: "/tok",
			script: "(echo x >%R/tok) 2>/dev/null || echo refused", want: "refused\n"},
		{name: "chroot, covers an image file", setup: writeRootFile("tok", "image's"), target: "/tok",
			script: "cat %R/tok", want: "s3cr3t"},
		{name: "chroot, below the /dev tmpfs", target: "/dev/pipes/tok",
			script: "cat %R/dev/pipes/tok; ls %R/dev/pipes", want: "s3cr3ttok\n"},
		{name: "in place, below /dev", inPlace: true, target: "/dev/pipes/tok",
			script: "cat %R/dev/pipes/tok", want: "s3cr3t"},
		{name: "in place, new directories", inPlace: true, target: "/run/secrets/tok",
			script: "stat -c '%a %u:%g' %R/run/secrets/tok; cat %R/run/secrets/tok; echo; " +
				"perl -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer => shift)->getline' %R/run/agent.sock",
			want: "400 1000:1000\ns3cr3t\nagent"},
		{name: "in place, existing directory", inPlace: true, setup: mkdirs("run/secrets"), target: "/run/secrets/tok",
			script: "cat %R/run/secrets/tok", want: "s3cr3t"},
		{name: "in place refuses to cover a file", inPlace: true, setup: writeRootFile("tok", "image's"), target: "/tok",
			wantErr: "cannot mount on /tok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secret, sock := mountSources(t)
			root := busyboxRoot(t)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			time.Sleep(10 * time.Millisecond) // a re-created directory's mtime would show
			before := listing(t, root)
			mounts := []Mount{{Source: secret, Target: tc.target, ReadOnly: true}, {Source: sock, Target: "/run/agent.sock"}}
			var out strings.Builder
			var err error
			if tc.inPlace {
				// This machine's own tools, on its "/": the commands only read.
				script := strings.ReplaceAll(tc.script, "%R", root)
				p := asSelf(t, Process{Args: []string{"/bin/sh", "-c", script},
					Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out, Mounts: mounts})
				err = (&inPlaceRunner{root: root}).Run(context.Background(), p)
			} else {
				var stdout, stderr string
				stdout, stderr, err = runChroot(t, root, Process{Args: sh(strings.ReplaceAll(tc.script, "%R", "")), Mounts: mounts})
				out.WriteString(stdout + stderr)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("run: %v (output %q)", err, out.String())
			}
			if out.String() != tc.want {
				t.Errorf("output %q, want %q", out.String(), tc.want)
			}
			if diff := cmp.Diff(before, listing(t, root)); diff != "" {
				t.Errorf("root changed (-before +after):\n%s", diff)
			}
		})
	}
}

func writeRootFile(name, content string) func(*testing.T, string) {
	return func(t *testing.T, root string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunMountErrors checks that a mount whose source is missing fails the run
// before the command starts.
func TestRunMountErrors(t *testing.T) {
	requireRoot(t)
	root := busyboxRoot(t)
	_, _, err := runChroot(t, root, Process{Args: []string{"true"}, Mounts: []Mount{{Source: "/nonexistent/x", Target: "/x"}}})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want a missing source", err)
	}
}
