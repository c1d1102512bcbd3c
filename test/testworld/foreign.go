package testworld

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// foreignMachines maps a host architecture to another that it cannot run natively: the
// platform and the ELF e_machine of that other architecture.
var foreignMachines = map[string]struct {
	platform string
	machine  uint16
}{
	"amd64": {"linux/arm64", 183}, // EM_AARCH64
	"arm64": {"linux/amd64", 62},  // EM_X86_64
}

// ForeignExecutable returns a platform this machine does not run natively and the
// start of an executable for it: a 64-byte ELF header, enough for execve to answer
// ENOEXEC when no emulator is registered for that machine in binfmt_misc. The test is
// skipped when one is (then the kernel would hand the file to the emulator) or when the
// host's architecture has no entry here.
func ForeignExecutable(t testing.TB) (platform string, data []byte) {
	t.Helper()
	f, ok := foreignMachines[runtime.GOARCH]
	if !ok {
		t.Skipf("no foreign architecture known for %s", runtime.GOARCH)
	}
	if handler := binfmtHandler(f.machine); handler != "" {
		t.Skipf("binfmt_misc has a handler for e_machine %d (%s): %s would run under emulation", f.machine, handler, f.platform)
	}
	h := make([]byte, 64)
	copy(h, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */})
	binary.LittleEndian.PutUint16(h[16:], 2) // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], f.machine)
	binary.LittleEndian.PutUint32(h[20:], 1) // EV_CURRENT
	return f.platform, h
}

// binfmtHandler returns the name of an enabled binfmt_misc entry whose magic matches
// 64-bit little-endian ELF executables for machine, or "".
func binfmtHandler(machine uint16) string {
	entries, err := filepath.Glob("/proc/sys/fs/binfmt_misc/*")
	if err != nil {
		return ""
	}
	var m [2]byte
	binary.LittleEndian.PutUint16(m[:], machine)
	// e_type (2 bytes) then e_machine, in the magic's hex: "0200b700" for aarch64.
	want := "0200" + hexByte(m[0]) + hexByte(m[1])
	for _, e := range entries {
		data, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		s := string(data)
		if strings.HasPrefix(s, "enabled") && strings.Contains(s, "magic 7f454c460201") && strings.Contains(s, want) {
			return filepath.Base(e)
		}
	}
	return ""
}

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}
