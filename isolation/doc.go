// Package isolation owns how a RUN instruction's process executes inside a build root:
// chroot isolation (a new mount and PID namespace with /proc, /dev, /sys, resolv.conf and
// hosts mounted, then chroot) and in-place execution (the container's own "/", in its
// own process group). It also detects whether kiln runs inside a container and lists
// the mount points an in-place build must leave alone.
//
// It is a leaf package.
package isolation
