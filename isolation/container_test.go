package isolation

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeHost builds a tree for detectContainer: files (relative path -> content) and
// namespace links (name -> inode).
func fakeHost(t *testing.T, files map[string]string, ns map[string]uint64) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nsDir := filepath.Join(root, "proc/self/ns")
	if err := os.MkdirAll(nsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, initial := range initialNamespaces() {
		ino := initial
		if v, ok := ns[name]; ok {
			ino = v
		}
		if err := os.Symlink(name+":["+strconv.FormatUint(ino, 10)+"]", filepath.Join(nsDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectContainer(t *testing.T) {
	t.Parallel()
	const dockerRootMount = "100 90 0:50 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work\n"
	const vmRootMount = "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		env   map[string]string
		ns    map[string]uint64
		want  bool
	}{
		{name: "docker", files: map[string]string{".dockerenv": ""}, ns: map[string]uint64{"pid": 4026532200}, want: true},
		{name: "podman", files: map[string]string{"run/.containerenv": ""}, env: map[string]string{"container": "podman"}, ns: map[string]uint64{"pid": 4026532300, "uts": 4026532301}, want: true},
		{name: "kubernetes with containerd", env: map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, ns: map[string]uint64{"pid": 4026532400}, want: true},
		{name: "cgroup v1 path", files: map[string]string{"proc/1/cgroup": "12:pids:/kubepods/besteffort/pod1/abc\n"}, ns: map[string]uint64{"cgroup": 4026532500}, want: true},
		{name: "PID 1 environment", files: map[string]string{"proc/1/environ": "HOME=/\x00container=lxc\x00"}, ns: map[string]uint64{"uts": 4026532600}, want: true},
		{name: "overlay root of a runtime", files: map[string]string{"proc/self/mountinfo": dockerRootMount}, ns: map[string]uint64{"ipc": 4026532700}, want: true},
		{name: "VM image with a stale .dockerenv", files: map[string]string{".dockerenv": "", "proc/self/mountinfo": vmRootMount}},
		{name: "host namespaces shared with a container", files: map[string]string{".dockerenv": ""}},
		{name: "new namespaces without a runtime marker", ns: map[string]uint64{"pid": 4026532800, "uts": 4026532801}},
		{name: "plain host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fakeHost(t, tc.files, tc.ns)
			got := detectContainer(hostView{root: root, getenv: func(k string) string { return tc.env[k] }})
			if got != tc.want {
				t.Errorf("detectContainer = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestInContainerHere checks the live answer against what the kernel says: a process
// in all the initial namespaces is never "in a container". The machine kiln is
// developed on is a VM that keeps /.dockerenv yet shares those namespaces; in a CI
// container (new namespaces) only the consistency of the answer can be checked.
func TestInContainerHere(t *testing.T) {
	t.Parallel()
	h := hostView{root: "/", getenv: os.Getenv}
	if inNewNamespace(h) {
		if got, want := InContainer(), hasRuntimeMarker(h); got != want {
			t.Errorf("InContainer() = %v in new namespaces with runtime marker %v", got, want)
		}
		return
	}
	if InContainer() {
		t.Error("InContainer() = true in the initial namespaces")
	}
}

func TestMountPoints(t *testing.T) {
	t.Parallel()
	points, err := MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(points, "/proc") {
		t.Errorf("MountPoints() = %v, want /proc among them", points)
	}
	if slices.Contains(points, "/") {
		t.Errorf("MountPoints() = %v includes /", points)
	}
}

func TestParseMountInfo(t *testing.T) {
	t.Parallel()
	data := "" +
		"21 26 0:20 / /proc rw,relatime - proc proc rw\n" +
		"26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n" +
		"41 26 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 master:2 - ext4 /dev/vda rw\n" +
		"50 26 0:30 / /mnt/with\\040space\\134x rw - tmpfs tmpfs rw\n" +
		"garbage line\n" +
		"60 26 0:31 / /no/separator rw tmpfs\n"
	want := []mountInfo{
		{point: "/proc", root: "/", fstype: "proc", options: "rw"},
		{point: "/", root: "/", fstype: "ext4", options: "rw,discard"},
		{point: "/var/lib/docker", root: "/var/lib/docker", fstype: "ext4", options: "rw"},
		{point: `/mnt/with space\x`, root: "/", fstype: "tmpfs", options: "rw"},
	}
	if diff := cmp.Diff(want, parseMountInfo([]byte(data)), cmp.AllowUnexported(mountInfo{})); diff != "" {
		t.Errorf("parseMountInfo (-want +got):\n%s", diff)
	}
}
