package isolation

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the chroot child: Run re-executes it.
func TestMain(m *testing.M) {
	Init()
	os.Exit(m.Run())
}
