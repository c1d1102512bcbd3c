package buildkitapi

import (
	"strings"
	"testing"
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
