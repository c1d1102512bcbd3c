package apiserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hostFacts is what /version and /info say about the machine and the kiln binary.
// Every fact is best effort: an empty field prints as empty in `docker info`, which
// beats failing the request.
type hostFacts struct {
	id        string // stable per host and state directory
	hostname  string
	kernel    string // uname -r
	machine   string // uname -m, e.g. x86_64 (dockerd's Architecture)
	osName    string // os-release PRETTY_NAME
	osVersion string // os-release VERSION_ID
	memTotal  int64
	gitCommit string // from the binary's build info, when built from a checkout
	buildTime string
}

// readHostFacts gathers the facts once.
func readHostFacts(stateDir string) hostFacts {
	var f hostFacts
	f.hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.kernel = unix.ByteSliceToString(u.Release[:])
		f.machine = unix.ByteSliceToString(u.Machine[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		f.memTotal = int64(si.Totalram) * int64(si.Unit)
	}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := os.ReadFile(p); err == nil {
			osr := parseOSRelease(data)
			f.osName, f.osVersion = osr["PRETTY_NAME"], osr["VERSION_ID"]
			break
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				f.gitCommit = s.Value[:min(len(s.Value), 7)]
			case "vcs.time":
				f.buildTime = s.Value
			}
		}
	}
	f.id = engineID(f.hostname, stateDir)
	return f
}

// engineID derives /info's ID from the host name and state directory, so it stays the
// same across restarts without a file to keep it in, and differs between two servers
// on one host. It is shaped like a UUID, as newer dockerd's IDs are.
func engineID(hostname, stateDir string) string {
	sum := sha256.Sum256([]byte("kiln\x00" + hostname + "\x00" + stateDir))
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

// parseOSRelease reads os-release(5): KEY=value lines, values optionally quoted.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		out[k] = v
	}
	return out
}
