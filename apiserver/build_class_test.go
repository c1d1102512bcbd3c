package apiserver

import (
	"strings"
	"testing"
)

// TestBuildFailureClass: /build's final errorDetail message ends with the failure's
// class (builder.Classify), so a user and a CI log tell the Dockerfile's, the
// command's and the registry's problems apart; the exit code stays the RUN's.
func TestBuildFailureClass(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	host := strings.SplitN(w.registry, "/", 2)[0]
	for _, tt := range []struct {
		name, dockerfile, suffix string
		code                     int
	}{
		{"RUN failed", "FROM " + w.busybox + "\nRUN exit 3\n", " [RUN failed (exit code 3)]", 3},
		{"missing base image", "FROM " + w.registry + "/nothere:1\n", " [registry error (" + host + ": not found)]", 0},
		{"missing COPY source", "FROM " + w.busybox + "\nCOPY nothere /\n", " [user error (dockerfile or context)]", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := postBuild(t, ts.URL, "", contextTar(t, map[string]string{"Dockerfile": tt.dockerfile}), nil)
			last := resp.last()
			if last.ErrorDetail == nil {
				t.Fatalf("HTTP %d, last message %+v: want an in-stream error", resp.status, last)
			}
			if !strings.HasSuffix(last.ErrorDetail.Message, tt.suffix) || last.ErrorDetail.Code != tt.code {
				t.Errorf("errorDetail %+v, want code %d and a message ending %q", last.ErrorDetail, tt.code, tt.suffix)
			}
		})
	}
}
