package isolation

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseUlimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Ulimit
		wantErr string
	}{
		{in: "nofile=512", want: Ulimit{Name: "nofile", Soft: 512, Hard: 512}},
		{in: "nofile=100:200", want: Ulimit{Name: "nofile", Soft: 100, Hard: 200}},
		{in: "core=-1", want: Ulimit{Name: "core", Soft: -1, Hard: -1}},
		{in: "nofile", wantErr: "want name=soft[:hard]"},
		{in: "bogus=1", wantErr: `ulimit "bogus": unknown name`},
		{in: "nofile=x", wantErr: "bad soft limit"},
		{in: "nofile=1:y", wantErr: "bad hard limit"},
		{in: "nofile=300:200", wantErr: "soft limit 300 must not exceed hard limit 200"},
	} {
		got, err := ParseUlimit(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseUlimit(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseUlimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestLimitErrorMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e    LimitError
		want string
	}{
		{LimitError{Limit: "memory", Value: 64 << 20}, "RUN was killed: the build's memory limit (64MiB) was reached"},
		{LimitError{Limit: "memory", Value: 1000}, "RUN was killed: the build's memory limit (1000B) was reached"},
		{LimitError{Limit: "pids", Value: 64}, "RUN reached the build's process limit (64 processes): a fork failed"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.e, got, tc.want)
		}
	}
}

// fakeCgroupFS lays out files under a temporary root for openCgroups.
func fakeCgroupFS(t *testing.T, files map[string]string) cgroupFS {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cgroupFS{root: root, pid: 42}
}

func TestOpenCgroupsV1(t *testing.T) {
	t.Parallel()
	fsys := fakeCgroupFS(t, map[string]string{
		"proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
			"31 1 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n" +
			"32 1 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
			"33 1 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
		"proc/42/cgroup": "8:pids:/\n4:memory:/svc/a\n1:cpu,cpuacct:/svc\n0::/\n",
		"sys/fs/cgroup/memory/svc/a/memory.limit_in_bytes": "",
		"sys/fs/cgroup/pids/pids.max":                      "",
		"sys/fs/cgroup/cpu,cpuacct/svc/cpu.shares":         "",
	})
	c, err := openCgroups(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory": filepath.Join(fsys.root, "sys/fs/cgroup/memory/svc/a"),
		"pids":   filepath.Join(fsys.root, "sys/fs/cgroup/pids"),
		"cpu":    filepath.Join(fsys.root, "sys/fs/cgroup/cpu,cpuacct/svc"),
	}
	if diff := cmp.Diff(want, c.v1); diff != "" || c.v2 != "" {
		t.Errorf("v1 dirs (-want +got):\n%s (v2 %q)", diff, c.v2)
	}
	if !c.supports("cpushares") || c.supports("cpusetcpus") {
		t.Errorf("supports: cpushares %v, cpusetcpus %v; want true, false", c.supports("cpushares"), c.supports("cpusetcpus"))
	}
}

func TestOpenCgroupsV2Delegated(t *testing.T) {
	t.Parallel()
	fsys := fakeCgroupFS(t, map[string]string{
		"proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		"proc/42/cgroup":      "0::/kubepods/pod1/ctr\n",
		"sys/fs/cgroup/kubepods/pod1/ctr/cgroup.controllers":     "cpuset cpu io memory pids",
		"sys/fs/cgroup/kubepods/pod1/ctr/cgroup.subtree_control": "",
		"sys/fs/cgroup/kubepods/pod1/ctr/cgroup.procs":           "42\n43\n",
	})
	c, err := openCgroups(fsys)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(fsys.root, "sys/fs/cgroup/kubepods/pod1/ctr")
	if c.v2 != dir {
		t.Errorf("v2 dir = %q, want %q", c.v2, dir)
	}
	// A regular file stands in for cgroupfs: every write replaces the last one, so
	// only the last process moved and the last controller enabled show.
	if got := string(readFile(filepath.Join(dir, serverCgroup, "cgroup.procs"))); got != "43" {
		t.Errorf("processes moved into %s: last %q, want 43", serverCgroup, got)
	}
	if got := string(readFile(filepath.Join(dir, "cgroup.subtree_control"))); got != "+cpuset" {
		t.Errorf("subtree_control last written %q, want +cpuset", got)
	}
}

// TestOpenCgroupsV2Again: a kiln already in its leaf uses the leaf's parent, rather
// than nesting another leaf.
func TestOpenCgroupsV2Again(t *testing.T) {
	t.Parallel()
	fsys := fakeCgroupFS(t, map[string]string{
		"proc/self/mountinfo":                      "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		"proc/42/cgroup":                           "0::/svc/" + serverCgroup + "\n",
		"sys/fs/cgroup/svc/cgroup.controllers":     "memory pids",
		"sys/fs/cgroup/svc/cgroup.subtree_control": "memory pids",
		"sys/fs/cgroup/svc/cgroup.procs":           "",
	})
	c, err := openCgroups(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(fsys.root, "sys/fs/cgroup/svc"); c.v2 != want {
		t.Errorf("v2 dir = %q, want %q", c.v2, want)
	}
}

// TestOpenCgroupsV2Root: in the host's root cgroup (initial cgroup namespace) no
// process is moved; in a container's namespace root they are, into the leaf.
func TestOpenCgroupsV2Root(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		nsLink    string // target of proc/self/ns/cgroup; "" for none
		wantMoved bool
	}{
		{name: "host root", nsLink: "cgroup:[4026531835]"},
		{name: "container namespace", nsLink: "cgroup:[4026532999]", wantMoved: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fakeCgroupFS(t, map[string]string{
				"proc/self/mountinfo":                  "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
				"proc/42/cgroup":                       "0::/\n",
				"sys/fs/cgroup/cgroup.controllers":     "memory pids",
				"sys/fs/cgroup/cgroup.subtree_control": "",
				"sys/fs/cgroup/cgroup.procs":           "1\n42\n",
			})
			if err := os.MkdirAll(filepath.Join(fsys.root, "proc/self/ns"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.nsLink, filepath.Join(fsys.root, "proc/self/ns/cgroup")); err != nil {
				t.Fatal(err)
			}
			if _, err := openCgroups(fsys); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Join(fsys.root, "sys/fs/cgroup", serverCgroup, "cgroup.procs"))
			if moved := err == nil; moved != tc.wantMoved {
				t.Errorf("processes moved: %v, want %v", moved, tc.wantMoved)
			}
		})
	}
}

func TestOpenCgroupsRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{name: "nothing mounted", files: map[string]string{"proc/42/cgroup": "0::/\n"}, wantErr: "no cgroup v2 or v1 memory hierarchy"},
		{name: "v2 without memory", files: map[string]string{
			"proc/self/mountinfo":                "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/42/cgroup":                     "0::/a\n",
			"sys/fs/cgroup/a/cgroup.controllers": "cpu pids",
		}, wantErr: "the memory controller is not delegated"},
		{name: "v1 without pids", files: map[string]string{
			"proc/self/mountinfo":                        "30 1 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			"proc/42/cgroup":                             "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "",
		}, wantErr: "no pids hierarchy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openCgroups(fakeCgroupFS(t, tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// hostCgroups opens this machine's cgroups or skips: the limit tests need a writable
// hierarchy (root on a v1 host, or a delegated v2).
func hostCgroups(t *testing.T) *Cgroups {
	t.Helper()
	requireRoot(t)
	c, err := OpenCgroups()
	if err != nil {
		t.Skipf("no writable cgroup: %v", err)
	}
	return c
}

func TestChrootLimits(t *testing.T) {
	cg := hostCgroups(t)
	root := busyboxRoot(t)
	for _, tc := range []struct {
		name       string
		script     string
		limits     Limits
		wantStdout string
		wantLimit  string // the LimitError's limit
	}{
		{name: "memory hog is killed", script: "head -c 200m /dev/zero | tail; echo survived",
			limits: Limits{Memory: 32 << 20}, wantLimit: "memory"},
		{name: "fork bomb is stopped", script: "i=0; while [ $i -lt 100 ]; do sleep 1 & i=$((i+1)); done; wait",
			limits: Limits{Pids: 16}, wantLimit: "pids"},
		{name: "under the limits", script: "head -c 8m /dev/zero | tail | wc -c",
			limits: Limits{Memory: 64 << 20, Pids: 16, CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000}, wantStdout: "8388608\n"},
		{name: "ulimit", script: "ulimit -n; ulimit -Hn",
			limits: Limits{Ulimits: []Ulimit{{Name: "nofile", Soft: 100, Hard: 200}}}, wantStdout: "100\n200\n"},
		{name: "shm size", script: "df -k /dev/shm | tail -n 1 | awk '{print $2}'",
			limits: Limits{ShmSize: 8 << 20}, wantStdout: "8192\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _, err := runChroot(t, root, Process{Args: sh(tc.script), Limits: tc.limits}, WithCgroups(cg))
			var le *LimitError
			if tc.wantLimit != "" {
				if !errors.As(err, &le) || le.Limit != tc.wantLimit {
					t.Fatalf("error = %v, want a %s LimitError", err, tc.wantLimit)
				}
				return
			}
			if err != nil || stdout != tc.wantStdout {
				t.Fatalf("stdout %q, error %v; want %q", stdout, err, tc.wantStdout)
			}
		})
	}
	// Every RUN cgroup is gone.
	for ctl, dir := range cg.v1 {
		if m, _ := filepath.Glob(filepath.Join(dir, "kiln-run-*")); len(m) > 0 {
			t.Errorf("%s: RUN cgroups left behind: %v", ctl, m)
		}
	}
}

func TestChrootLimitsNeedCgroups(t *testing.T) {
	requireRoot(t)
	root := busyboxRoot(t)
	_, _, err := runChroot(t, root, Process{Args: sh("true"), Limits: Limits{Memory: 1 << 30, Pids: 10}})
	if err == nil || !strings.Contains(err.Error(), "memory, pids: resource limits need a writable cgroup") {
		t.Errorf("error = %v, want a refusal naming memory and pids", err)
	}
}

func TestInPlaceRefusesLimits(t *testing.T) {
	t.Parallel()
	err := NewInPlace().Run(t.Context(), Process{Args: []string{"true"}, Limits: Limits{Memory: 1 << 20, ShmSize: 1}})
	if err == nil || !strings.Contains(err.Error(), "resource limits (memory, shmsize) need chroot isolation") {
		t.Errorf("error = %v", err)
	}
}
