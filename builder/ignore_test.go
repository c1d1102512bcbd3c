package builder_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

func TestIgnoreSet(t *testing.T) {
	t.Parallel()
	host := builder.InPlaceHost{
		Mounts:     []string{"/", "/workspace", "/etc/hosts"},
		Executable: "/kiln/kiln",
		StateDirs:  []string{"/kiln/state/build-1", "/tmp/kiln.sock"},
		KeepVarRun: true,
	}
	tests := []struct {
		name  string
		mode  isolation.Mode
		host  builder.InPlaceHost
		extra []string
		want  []string
	}{
		{name: "chroot ignores only the extra paths", mode: isolation.Chroot, host: host, extra: []string{"/cache"}, want: []string{"/cache"}},
		{name: "in place", mode: isolation.InPlace, host: host, extra: []string{"/cache"},
			want: []string{"/busybox", "/cache", "/dev", "/etc/hosts", "/kaniko", "/kiln", "/proc", "/sys", "/tmp/kiln.sock", "/var/run", "/workspace"}},
		{name: "in place, binary in a system directory, /var/run not kept", mode: isolation.InPlace,
			host: builder.InPlaceHost{Executable: "/usr/local/bin/kiln", StateDirs: []string{"/state"}},
			want: []string{"/busybox", "/dev", "/kaniko", "/proc", "/state", "/sys", "/usr/local/bin/kiln"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := builder.IgnoreSet(tt.mode, tt.host, tt.extra...).Paths()
			if diff := cmp.Diff(snapshot.NewIgnore(tt.want...).Paths(), got); diff != "" {
				t.Errorf("ignore set (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInstallDir(t *testing.T) {
	t.Parallel()
	tests := []struct{ exe, want string }{
		{"/kiln/kiln", "/kiln"},
		{"/opt/kiln/bin/kiln", "/opt/kiln/bin"},
		{"/usr/local/bin/kiln", "/usr/local/bin/kiln"},
		{"/usr/bin/kiln", "/usr/bin/kiln"},
		{"/kiln", "/kiln"},
	}
	for _, tt := range tests {
		if got := builder.InstallDir(tt.exe); got != tt.want {
			t.Errorf("InstallDir(%q) = %q, want %q", tt.exe, got, tt.want)
		}
	}
}
