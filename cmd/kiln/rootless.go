package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/isolation"
)

// rootlessExit ends a kiln that ran itself again in a user namespace: run exits
// with the code that run ended with, printing nothing more.
type rootlessExit struct{ code int }

// Error implements error.
func (e *rootlessExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// enterRootless runs this kiln again as uid 0 of a user namespace when it is not
// root and chroot isolation is chosen (explicitly, or by auto outside a container),
// so that build roots, chown and the chroot child's namespaces work without real
// root. It returns a *rootlessExit once that kiln has ended, and nil when this kiln
// goes on itself (root, in-place, or already inside the namespace).
func enterRootless(ctx context.Context, isolationFlag string, force bool, h host) error {
	if os.Geteuid() == 0 || isolation.Rootless() != "" {
		return nil
	}
	mode, err := resolveIsolation(&buildFlags{isolation: isolationFlag, force: force}, h)
	if err != nil || mode != isolation.Chroot {
		return nil // the usual path reports the error
	}
	code, err := isolation.EnterUserNamespace(ctx)
	if err != nil {
		return fmt.Errorf("chroot isolation as uid %d (not root) needs a user namespace: %w; or use --isolation=inplace inside a container", os.Geteuid(), err)
	}
	return &rootlessExit{code: code}
}

// rootlessNotes logs, inside the user namespace, what rootless chroot isolation
// changes.
func rootlessNotes(log logrus.FieldLogger) {
	switch isolation.Rootless() {
	case isolation.MappingRange:
		log.Info("Rootless: chroot isolation in a user namespace (uid 0 is kiln's own uid outside, 1.. the user's /etc/subuid and /etc/subgid ranges)")
	case isolation.MappingSingle:
		log.Warnf("Rootless: chroot isolation in a user namespace that maps only uid and gid 0 (%s): every file of a build is owned by 0, and COPY --chown or a USER other than root fails", isolation.RootlessReason())
	}
}
