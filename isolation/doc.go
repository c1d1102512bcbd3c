// Package isolation owns how a RUN instruction's process executes inside a build root:
// chroot isolation (a new mount and PID namespace with /proc, /dev, /sys, resolv.conf and
// hosts mounted, then chroot) and in-place execution (the container's own "/", in its
// own process group). It also detects whether kiln runs inside a container and lists
// the mount points an in-place build must leave alone.
//
// # Chroot isolation
//
// NewChroot re-executes the running binary (/proc/self/exe) as a child in new mount,
// PID, UTS and IPC namespaces; the network namespace stays the host's so that RUN can
// reach package mirrors. Init, called first in main, recognises the child, which then
//
//   - makes every mount private, so nothing it mounts reaches the host;
//   - mounts a fresh /proc (kernel knobs such as /proc/sys read-only, /proc/kcore and
//     friends masked), a tmpfs /dev with null, zero, full, random, urandom, tty, a
//     private devpts, /dev/shm and the usual links, a read-only /sys, and private
//     copies of the host's /etc/resolv.conf and /etc/hosts;
//   - pivots into the root and detaches the host's tree (chroot where pivot_root is
//     impossible);
//   - changes to the working directory, drops to Docker's default capability set,
//     switches to the RUN user, looks the command up in the process's PATH inside the
//     root, marks every descriptor above stderr close-on-exec, sets no_new_privs,
//     loads Docker's default seccomp profile (seccomp.go; not for RUN
//     --security=insecure or WithSeccompUnconfined) and execs it. The command is PID 1
//     of its namespace: when it exits, the kernel kills whatever it left behind, as
//     with `docker build`.
//
// The root, /dev and writable RUN mounts are nodev: RUN may mknod, as under Docker,
// but not open what it made. docs/security.md describes what all this protects.
//
// Mount points the image lacks are created by the parent before the RUN and removed
// after it, with their directories' times restored, so `RUN true` changes nothing in
// the root. Only the directories' ctime cannot be put back.
//
// This needs root: CAP_SYS_ADMIN for the namespaces and mounts, CAP_SYS_CHROOT,
// CAP_SETUID, CAP_SETGID and CAP_SETPCAP. Without them the RUN fails with an error
// saying so and suggesting --isolation=inplace.
//
// # Rootless
//
// Root of a user namespace is enough. EnterUserNamespace runs a non-root kiln again as
// uid 0 of a new user and mount namespace, mapping the user's /etc/subuid and
// /etc/subgid ranges after 0 through newuidmap and newgidmap when it can, or uid 0
// alone otherwise (Rootless, CheckOwner); Init recognises its first stage, which waits
// for the maps and executes itself again to hold the namespace's capabilities.
//
// # In-place execution
//
// NewInPlace runs the command directly on this machine's "/", kaniko's model for
// unprivileged containers: no namespaces and no mounts, so it needs no capability
// beyond CAP_SETUID/CAP_SETGID when the RUN user differs from kiln's. The process gets
// its own process group, which is killed when the command exits or the build is
// cancelled. Never use it outside a container: RUN would change the host.
//
// It is a leaf package.
package isolation
