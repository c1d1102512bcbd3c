package buildkitapi

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kiln-build/kiln/builder"
)

// TestFrontendNetworkMode: buildx --network reaches the frontend as
// force-network-mode; none takes every RUN's network away (Request.NoNetwork), the
// server's network modes keep it, anything else is refused.
func TestFrontendNetworkMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode      string
		noNetwork bool
		err       string
	}{
		{mode: "", noNetwork: false},
		{mode: "default", noNetwork: false},
		{mode: "host", noNetwork: false},
		{mode: "sandbox", noNetwork: false},
		{mode: "none", noNetwork: true},
		{mode: "bridge", err: `network mode "bridge" is not supported by kiln`},
		{mode: "mynet", err: `network mode "mynet" is not supported by kiln`},
	}
	for _, tt := range tests {
		t.Run("mode="+tt.mode, func(t *testing.T) {
			o, err := parseFrontendOptions(map[string]string{"force-network-mode": tt.mode})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.noNetwork != tt.noNetwork {
				t.Errorf("noNetwork = %v, want %v", o.noNetwork, tt.noNetwork)
			}
		})
	}
	o, err := parseFrontendOptions(map[string]string{})
	if err != nil || o.noNetwork {
		t.Errorf("no force-network-mode: noNetwork = %v, err = %v", o != nil && o.noNetwork, err)
	}
}

// TestFrontendLimits: buildx's --shm-size and --ulimit become the build's limits (as
// /build's shmsize and ulimits); --cgroup-parent and bad values are refused, named.
func TestFrontendLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		attrs map[string]string
		want  builder.Limits
		err   string
	}{
		{name: "none", attrs: map[string]string{"shm-size": "", "ulimit": "", "cgroup-parent": ""}},
		{name: "shm-size", attrs: map[string]string{"shm-size": "134217728"}, want: builder.Limits{ShmSize: 128 << 20}},
		{name: "ulimits", attrs: map[string]string{"ulimit": "nofile=1024:2048,nproc=100"},
			want: builder.Limits{Ulimits: []builder.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 100, Hard: 100}}}},
		{name: "bad shm-size", attrs: map[string]string{"shm-size": "64m"}, err: `shm-size "64m": want a number of bytes`},
		{name: "bad ulimit", attrs: map[string]string{"ulimit": "bogus=1"}, err: `--ulimit: ulimit "bogus": unknown name`},
		{name: "cgroup-parent", attrs: map[string]string{"cgroup-parent": "x"}, err: "--cgroup-parent is not supported by kiln"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFrontendOptions(tt.attrs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, o.limits, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
		})
	}
}
