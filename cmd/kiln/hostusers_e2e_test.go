package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostUsersFalsePod runs the real kiln binary the way a Kubernetes pod with
// `hostUsers: false` runs it: as uid 0 of a user namespace that maps 65,536 ids to an
// unprivileged range of the host (100000-165535 here), with mount and PID namespaces of
// its own and an unmasked /proc (procMount: Unmasked). kiln needs no re-execution there
// (it is root of its namespace); --isolation=chroot builds with per-build roots, RUN
// as root, `chown`, USER 1000 and COPY --chown keep their ids in the image, and the
// files the build wrote on the host belong to the pod's range, never to the host's root.
func TestHostUsersFalsePod(t *testing.T) {
	needRoot(t)
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	const hostBase, size = 100000, 65536
	dir, bin := rootlessKiln(t, "kiln-hostusers-")
	work := filepath.Join(dir, "pod")
	ctxDir := filepath.Join(work, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	df := "FROM " + reg + "/busybox:1.35\n" +
		"RUN echo hi > /made && chown 1000:1000 /made && id -u > /id\n" +
		"COPY --chown=1000:1000 f /f\n" +
		"USER 1000\nRUN id -u > /tmp/user\n"
	for name, data := range map[string]string{"Dockerfile": df, "f": "x\n"} {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The pod's root owns its emptyDir.
	if err := filepath.Walk(work, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, hostBase, hostBase)
	}); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(work, "state")
	out := filepath.Join(work, "image.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// unshare, already in the user namespace, makes the pod's mount and PID
	// namespaces and its /proc, as the container runtime would.
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--pid", "--fork", "--mount-proc", "--",
		bin, "build", "--isolation=chroot", "--context", ctxDir, "--state-dir", state,
		"--no-push", "--insecure-pull", "--tar-path", out, "--destination", "hostusers/test:1")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostBase, Size: size}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostBase, Size: size}},
		GidMappingsEnableSetgroups: true,
		// The pod's process is uid 0 of its namespace (host 100000).
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
	}
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kiln build in the pod's user namespace: %v\n%s", err, log)
	}
	if strings.Contains(string(log), "Rootless:") {
		t.Errorf("kiln re-executed itself although it is root of its namespace:\n%s", log)
	}
	checkLayerFiles(t, out, map[string]string{"made": "1000:1000:hi\n", "id": "0:0:0\n", "f": "1000:1000:x\n", "tmp/user": "1000:0:1000\n"})
	// On the host, everything the build wrote belongs to the pod's range.
	if err := filepath.Walk(work, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil // a root removed while walking
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid < hostBase || st.Uid >= hostBase+size {
			t.Errorf("%s belongs to host uid %d, outside the pod's range", p, st.Uid)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
