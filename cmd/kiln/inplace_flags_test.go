package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/isolation"
)

func TestPlanInPlace(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DOCKER_CONFIG": "/kiln/.docker", "HOME": "/root", "SSH_AUTH_SOCK": "/run/agent.sock"}
	refused := errors.New("operation not permitted")
	for _, tc := range []struct {
		name        string
		mode        isolation.Mode
		value       string
		probe       error
		wantNS      bool
		wantWarning string
		wantErr     string
	}{
		{name: "auto, allowed", mode: isolation.InPlace, value: "auto", wantNS: true},
		{name: "auto, refused: warning", mode: isolation.InPlace, value: "auto", probe: refused, wantWarning: "operation not permitted"},
		{name: "on, allowed", mode: isolation.InPlace, value: "on", wantNS: true},
		{name: "on, refused: error", mode: isolation.InPlace, value: "on", probe: refused, wantErr: "--inplace-namespaces=on: operation not permitted"},
		{name: "off: warning", mode: isolation.InPlace, value: "off", wantWarning: "--inplace-namespaces=off"},
		{name: "chroot: nothing to do", mode: isolation.Chroot, value: "on", probe: refused},
		{name: "bad value", mode: isolation.InPlace, value: "yes", wantErr: `unknown value "yes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, true, env)
			probed := false
			h.inPlaceNamespaces = func(context.Context) error { probed = true; return tc.probe }
			secrets := secretFlagFiles([]string{"id=npm,src=" + writeTemp(t, "token")}, []string{"default"}, h.lookupEnv)
			sec, err := planInPlace(h, tc.mode, tc.value, secrets, "/kiln/state/build-1", "/run/kiln.sock")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sec.namespaces != tc.wantNS || !strings.Contains(sec.warning, tc.wantWarning) || (tc.wantWarning == "") != (sec.warning == "") {
				t.Errorf("namespaces %v, warning %q; want %v, %q", sec.namespaces, sec.warning, tc.wantNS, tc.wantWarning)
			}
			if probed != (tc.mode == isolation.InPlace && tc.value != "off") {
				t.Errorf("probed = %v", probed)
			}
			if !tc.wantNS {
				if len(sec.hidden) > 0 {
					t.Errorf("hidden %q without namespaces", sec.hidden)
				}
				return
			}
			for _, want := range []string{"/kiln/.docker/config.json", "/kaniko/.docker/config.json", "/root/.aws/credentials",
				secrets[0], "/run/agent.sock", "/kiln/state/build-1", "/run/kiln.sock", "/kiln"} {
				if !slices.Contains(sec.hidden, want) {
					t.Errorf("hidden lacks %s: %q", want, sec.hidden)
				}
			}
		})
	}
}

// writeTemp writes content to a new file and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
