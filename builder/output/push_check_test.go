package output_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/builder/output"
)

func TestCheckPushPermission(t *testing.T) {
	t.Parallel()
	var uploads, cancels, manifests atomic.Int64
	host := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "right" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			switch {
			case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/"):
				uploads.Add(1)
			case r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/blobs/uploads/"):
				cancels.Add(1)
			case strings.Contains(r.URL.Path, "/manifests/"):
				manifests.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	dead := deadHost(t)

	tests := []struct {
		name    string
		ref     string
		auth    authn.Authenticator
		wantErr string // "" = allowed
	}{
		{name: "right credentials", ref: host + "/app:v1", auth: &authn.Basic{Username: "user", Password: "right"}},
		{name: "wrong password", ref: host + "/app:v1", auth: &authn.Basic{Username: "user", Password: "hunter2"}, wantErr: "UNAUTHORIZED"},
		{name: "anonymous", ref: host + "/app:v1", auth: authn.Anonymous, wantErr: "UNAUTHORIZED"},
		{name: "nothing listening", ref: dead + "/app:v1", auth: authn.Anonymous, wantErr: "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := output.CheckPushPermission(context.Background(), mustRef(t, tt.ref),
				output.WithKeychain(staticKeychain{tt.auth}), output.WithUserAgent("kiln/test"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPushPermission: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckPushPermission succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, "checking push permission for "+tt.ref) {
				t.Errorf("error = %q, want it to name %s and %s", msg, tt.ref, tt.wantErr)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error reveals the password: %s", msg)
			}
		})
	}
	t.Cleanup(func() {
		// Runs after the parallel subtests: the allowed check started one upload and
		// cancelled it, and wrote no manifest.
		if uploads.Load() != 1 || cancels.Load() != 1 || manifests.Load() != 0 {
			t.Errorf("uploads %d, cancels %d, manifest requests %d; want 1, 1, 0", uploads.Load(), cancels.Load(), manifests.Load())
		}
	})
}

// deadHost returns a loopback host:port nothing listens on.
func deadHost(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
