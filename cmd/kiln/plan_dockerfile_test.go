package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kiln build reads --dockerfile as the server reads the query's dockerfile: inside the
// context (no symlink out to a host file) and at most 16 MiB. A path the operator wrote
// out of the context ("../Dockerfile") is read as kaniko reads it (TestPlanBuildDockerfileOutside).
func TestPlanBuildDockerfileSafety(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("FROM host-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(ctxDir, "link.Dockerfile")); err != nil {
		t.Fatal(err)
	}
	big := append([]byte("FROM scratch\n"), bytes.Repeat([]byte("# padding\n"), 16<<20/10+1)...)
	if err := os.WriteFile(filepath.Join(ctxDir, "big.Dockerfile"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dockerfile, wantErr string
	}{
		{"a symlink to a host file", "link.Dockerfile", `no Dockerfile "link.Dockerfile"`},
		{"over the size cap", "big.Dockerfile", "the Dockerfile big.Dockerfile is larger than the 16 MiB limit"},
		{"over the size cap, absolute", filepath.Join(ctxDir, "big.Dockerfile"), "larger than the 16 MiB limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, "--context", ctxDir, "--no-push", "--dockerfile", tt.dockerfile)
			_, err := planBuild(context.Background(), f, fakeHost(t, false, nil))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("planBuild: err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// kaniko reads --dockerfile ../Dockerfile beside the context, and pipelines rely on it.
func TestPlanBuildDockerfileOutside(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	for _, spec := range []string{"../Dockerfile", "../sub/../Dockerfile"} {
		f, _ := parseFlags(t, "--context", filepath.Join(ctxDir, "sub"), "--no-push", "--dockerfile", spec)
		p, err := planBuild(context.Background(), f, fakeHost(t, false, nil))
		if err != nil {
			t.Fatalf("--dockerfile %s: %v", spec, err)
		}
		if got := string(p.req.Dockerfile); got != testDockerfile {
			t.Errorf("--dockerfile %s read %q, want the context's parent's Dockerfile", spec, got)
		}
		p.req.Context.Close()
	}
}

// kiln warm's --dockerfile URL is refused over the cap, not silently cut short.
func TestReadWarmDockerfileSizeCap(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("#\n"), 8<<20+1))
	}))
	defer srv.Close()
	_, err := readWarmDockerfile(context.Background(), srv.URL+"/Dockerfile", srv.Client())
	if err == nil || !strings.Contains(err.Error(), "larger than the 16 MiB limit") {
		t.Fatalf("readWarmDockerfile: err = %v, want the size limit", err)
	}
}
