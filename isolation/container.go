package isolation

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// initialNamespaces returns the inode numbers of the initial namespaces, fixed by the
// kernel (PROC_*_INIT_INO in include/linux/proc_ns.h). A process whose namespace has
// another number was put in a new one by someone: a container runtime, as a rule.
func initialNamespaces() map[string]uint64 {
	return map[string]uint64{
		"ipc":    0xEFFFFFFF,
		"uts":    0xEFFFFFFE,
		"pid":    0xEFFFFFFC,
		"cgroup": 0xEFFFFFFB,
	}
}

// InContainer reports whether this process clearly runs inside a container. It
// resolves --isolation=auto, where a wrong "yes" would let an in-place build overwrite
// a host's "/", so it wants two independent kinds of evidence:
//
//   - a runtime's marker: /.dockerenv, /run/.containerenv, a "container" variable in
//     our or PID 1's environment, KUBERNETES_SERVICE_HOST, a runtime's name in PID 1's
//     cgroup path, or an overlay root filesystem stored under a runtime's directory; and
//   - isolation by the kernel: a PID, UTS, IPC or cgroup namespace other than the
//     initial one.
//
// A marker alone is not enough: VMs built from container images keep /.dockerenv (the
// machine kiln is developed on is one), and PID 1 not being an init is too weak a hint
// to count. The known false negative is a container sharing all four of the host's
// namespaces (--pid=host --uts=host --ipc=host --cgroupns=host); choose the isolation
// explicitly there.
func InContainer() bool {
	return detectContainer(hostView{root: "/", getenv: os.Getenv})
}

// hostView is where container detection looks: a root directory ("/" for real, a fake
// tree in tests) and an environment.
type hostView struct {
	root   string
	getenv func(string) string
	// only, when set, limits inNewNamespace to that namespace type.
	only string
}

func (h hostView) read(p string) []byte {
	data, _ := os.ReadFile(filepath.Join(h.root, p))
	return data
}

func (h hostView) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(h.root, p))
	return err == nil
}

func detectContainer(h hostView) bool {
	return hasRuntimeMarker(h) && inNewNamespace(h)
}

func hasRuntimeMarker(h hostView) bool {
	if h.exists(".dockerenv") || h.exists("run/.containerenv") {
		return true
	}
	if h.getenv("container") != "" || h.getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	for _, kv := range bytes.Split(h.read("proc/1/environ"), []byte{0}) {
		if bytes.HasPrefix(kv, []byte("container=")) {
			return true
		}
	}
	cgroup := string(h.read("proc/1/cgroup"))
	for _, name := range []string{"docker", "kubepods", "containerd", "libpod", "crio", "lxc", "garden"} {
		if strings.Contains(cgroup, name) {
			return true
		}
	}
	for _, m := range parseMountInfo(h.read("proc/self/mountinfo")) {
		if m.point == "/" && strings.Contains(m.fstype, "overlay") {
			for _, dir := range []string{"/var/lib/docker/", "/var/lib/containerd/", "/var/lib/containers/", "/run/containerd/"} {
				if strings.Contains(m.options, dir) {
					return true
				}
			}
		}
	}
	return false
}

func inNewNamespace(h hostView) bool {
	for ns, initial := range initialNamespaces() {
		if h.only != "" && ns != h.only {
			continue
		}
		link, err := os.Readlink(filepath.Join(h.root, "proc/self/ns", ns))
		if err != nil {
			continue // no such namespace type in this kernel
		}
		// The link reads "pid:[4026531836]".
		inner, ok := strings.CutPrefix(link, ns+":[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(inner, "]"), 10, 64)
		if err == nil && ino != initial {
			return true
		}
	}
	return false
}

// MountPoints lists the mount points of this process, from /proc/self/mountinfo, each
// once and in mount order, except "/" itself. An in-place build ignores them: it must
// neither snapshot nor delete what is mounted into its root.
func MountPoints() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mount points: %w", err)
	}
	seen := map[string]bool{"/": true}
	var points []string
	for _, m := range parseMountInfo(data) {
		if !seen[m.point] {
			seen[m.point] = true
			points = append(points, m.point)
		}
	}
	return points, nil
}

// mountInfo is the part of a /proc/self/mountinfo line kiln uses.
type mountInfo struct {
	point   string // mount point, unescaped
	root    string // the mounted filesystem's directory (a cgroup path for cgroupfs)
	fstype  string
	options string // super options, e.g. overlay's lowerdir=…,upperdir=…
}

// parseMountInfo parses mountinfo lines (proc(5)): ID, parent ID, major:minor, root,
// mount point, mount options, optional fields, "-", fstype, source, super options.
// Malformed lines are skipped.
func parseMountInfo(data []byte) []mountInfo {
	var out []mountInfo
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		m := mountInfo{point: UnescapeMount(fields[4]), root: UnescapeMount(fields[3]), fstype: fields[sep+1]}
		if sep+3 < len(fields) {
			m.options = fields[sep+3]
		}
		out = append(out, m)
	}
	return out
}

// UnescapeMount undoes the octal escapes of a path in /proc/self/mountinfo (\040 for
// space, \011, \012, \134).
func UnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
