package copier

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// capabilityXattr is the one extended attribute the classic builder carries over
// (go-archive's ReadSecurityXattrToTarHeader): file capabilities, as on ping.
const capabilityXattr = "security.capability"

// Layout of struct vfs_cap_data (linux/capability.h): revision 3 appends a root UID
// that only means something inside the user namespace that wrote it.
const (
	capRevisionOffset = 3
	capRevision2      = 2
	capRevision3      = 3
	capRevision2Size  = 20
)

// copyCapability copies src's security.capability attribute onto out, converting a
// namespaced (revision 3) capability to revision 2 as the classic builder does. It must
// run after chown, which drops capabilities. Where the destination cannot hold the
// attribute (no xattr support, or no CAP_SETFCAP) the capability is lost rather than
// the copy failing, as in an unprivileged Docker.
func copyCapability(src string, out *os.File) error {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(src, capabilityXattr, buf)
	switch {
	case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP):
		return nil
	case errors.Is(err, unix.ERANGE):
		return fmt.Errorf("%s: %s larger than %d bytes", src, capabilityXattr, len(buf))
	case err != nil:
		return fmt.Errorf("lgetxattr %s: %w", capabilityXattr, err)
	}
	capData := buf[:n]
	if n > capRevisionOffset && capData[capRevisionOffset] == capRevision3 && n >= capRevision2Size {
		capData[capRevisionOffset] = capRevision2
		capData = capData[:capRevision2Size]
	}
	err = unix.Fsetxattr(int(out.Fd()), capabilityXattr, capData, 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsetxattr %s: %w", capabilityXattr, err)
	}
	return nil
}
