package main

import (
	"strings"
	"testing"
)

func TestCheckUnsupported(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string // "" = accepted
	}{
		{args: nil},
		{args: []string{"--cache=false", "--cache-copy-layers=false", "--use-new-run=false"}},
		{args: []string{"--cache-run-layers=true", "--compressed-caching=false", "--cache-run-layers=false"}},
		{args: []string{"--cache-dir=/cache", "--cache-ttl=336h", "--kaniko-dir=/kaniko", "--compression-level=-1"}},
		{args: []string{"--skip-push-permission-check", "--push-ignore-immutable-tag-errors"}}, // implemented
		{args: []string{"--cache"}}, // implemented: the step cache
		{args: []string{"--cache=true", "--cache-repo=registry.test/cache", "--no-push-cache", "--cache-report=r.json"}},
		{args: []string{"--cache-dir=/elsewhere"}}, // implemented: the base-image cache
		{args: []string{"--cache-ttl=6h", "--cache-copy-layers", "--compressed-caching=false"}},
		{args: []string{"--git=branch=main", "--context-sub-path=app"}},                    // context flags, no longer unsupported
		{args: []string{"--kaniko-dir=/k", "--use-new-run", "--image-fs-extract-retry=3"}}, // implemented, or a no-op by design
		{args: []string{"--force-build-metadata=false"}},
		{args: []string{"--force-build-metadata"}, wantErr: "--force-build-metadata=true: not supported: kiln adds no layer"},
		{args: []string{"--compression=zstd", "--compression-level=9"}}, // implemented
		{args: []string{"--upload-tar-retry=0"}},
		{args: []string{"--upload-tar=https://up.example/image.tar"}, wantErr: "--upload-tar=https://up.example/image.tar: not supported: kiln does not upload tarballs"},
		{args: []string{"--upload-tar-retry=3"}, wantErr: "--upload-tar-retry=3: not supported"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, fs := parseFlags(t, tt.args...)
			err := checkUnsupported(fs)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkUnsupported: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkUnsupported: err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKanikoFlagSpellings(t *testing.T) {
	t.Parallel()
	// Shorthands and defaults a kaniko invocation relies on.
	f, _ := parseFlags(t, "-c", "/ctx", "-f", "df", "-d", "a:1", "-d", "b:2", "-v", "debug")
	if f.context != "/ctx" || f.dockerfile != "df" || f.verbosity != "debug" {
		t.Errorf("shorthands parsed to context=%q dockerfile=%q verbosity=%q", f.context, f.dockerfile, f.verbosity)
	}
	if len(f.destinations) != 2 {
		t.Errorf("destinations = %q, want two", f.destinations)
	}
	d, _ := parseFlags(t)
	defaults := map[string][2]string{
		"context":       {d.context, "/workspace/"},
		"dockerfile":    {d.dockerfile, "Dockerfile"},
		"snapshot-mode": {d.snapshotMode, "redo"},
		"verbosity":     {d.verbosity, "info"},
		"log-format":    {d.logFormat, "color"},
		"isolation":     {d.isolation, "auto"},
	}
	for flag, v := range defaults {
		if v[0] != v[1] {
			t.Errorf("--%s defaults to %q, want %q", flag, v[0], v[1])
		}
	}
	if !d.ignoreVarRun {
		t.Error("--ignore-var-run defaults to false, want true")
	}
	// A comma is part of the value, not a separator, as in kaniko.
	f, _ = parseFlags(t, "--build-arg", "LIST=a,b")
	if len(f.buildArgs) != 1 || f.buildArgs[0] != "LIST=a,b" {
		t.Errorf("--build-arg LIST=a,b parsed to %q", f.buildArgs)
	}
}
