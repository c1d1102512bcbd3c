package contexts

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// suiteFile is one file of the conformance tree.
type suiteFile struct {
	content string
	mode    fs.FileMode
}

// suiteTree is the tree every source must deliver, in modes git can carry too.
var suiteTree = map[string]suiteFile{
	"Dockerfile":        {"FROM scratch\n", 0o644},
	"run.sh":            {"#!/bin/sh\necho hi\n", 0o755},
	"debug.log":         {"noise\n", 0o644},
	".dockerignore":     {"*.log\n", 0o644},
	"app/main.go":       {"package main\n", 0o644},
	"app/secret":        {"s3cr3t\n", 0o600 | 0o044}, // git keeps only the x bit
	"app/.dockerignore": {"secret\n", 0o644},
}

// writeSuiteTree writes suiteTree under dir.
func writeSuiteTree(t *testing.T, dir string) {
	t.Helper()
	for name, f := range suiteTree {
		writeFile(t, filepath.Join(dir, name), f.content, f.mode)
	}
}

// writeSuiteTar writes suiteTree as a tar to w.
func writeSuiteTar(t *testing.T, w io.Writer) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, d := range []string{"app/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for name, f := range suiteTree {
		hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64(f.mode), Size: int64(len(f.content))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// suiteSource makes one kind of context source holding suiteTree: the spec to
// Open, and the options it needs.
type suiteSource struct {
	name string
	make func(t *testing.T) (string, []OpenOption)
}

var suiteSources = []suiteSource{
	{"azure", azureSuiteSource},
	{"s3", func(t *testing.T) (string, []OpenOption) {
		srv := testworld.S3(t)
		srv.CreateBucket(t, "suite")
		srv.Put(t, "suite", "context.tar.gz", s3SuiteTarGz(t))
		return "s3://suite/context.tar.gz", []OpenOption{WithCloud(CloudOptions{S3Endpoint: srv.Endpoint, S3ForcePathStyle: true})}
	}},
	{"dir", func(t *testing.T) (string, []OpenOption) {
		dir := t.TempDir()
		writeSuiteTree(t, dir)
		return "dir://" + dir, nil
	}},
	{"tar", func(t *testing.T) (string, []OpenOption) {
		path := filepath.Join(t.TempDir(), "ctx.tar")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		writeSuiteTar(t, f)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return "tar://" + path, nil
	}},
	{"tar.gz", func(t *testing.T) (string, []OpenOption) {
		path := filepath.Join(t.TempDir(), "ctx.tar.gz")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(f)
		writeSuiteTar(t, zw)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return "tar://" + path, nil
	}},
	{"stdin", func(t *testing.T) (string, []OpenOption) {
		var b strings.Builder
		writeSuiteTar(t, &b)
		return "tar://stdin", []OpenOption{WithStdin(strings.NewReader(b.String()))}
	}},
	{"gs", gcsSuiteSource},
	{"git", func(t *testing.T) (string, []OpenOption) {
		srv := startGitServer(t, func(dir string) { writeSuiteTree(t, dir) })
		return srv.url + "#refs/heads/main", nil
	}},
}

// TestSourceConformance runs one table of expectations against every source.
func TestSourceConformance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		subPath  string
		files    map[string]string // file: its suiteTree name
		excluded []string
		included []string
	}{
		{
			name:     "root",
			files:    map[string]string{"Dockerfile": "Dockerfile", "run.sh": "run.sh", "app/main.go": "app/main.go", "app/secret": "app/secret"},
			excluded: []string{"debug.log"},
			included: []string{"Dockerfile", "app/secret", "app/x.log", "."}, // *.log matches at the root only, as in Docker
		},
		{
			name:     "sub-path",
			subPath:  "app",
			files:    map[string]string{"main.go": "app/main.go", "secret": "app/secret"},
			excluded: []string{"secret"},
			included: []string{"main.go", "x.log"},
		},
		{
			name:     "sub-path ./app/",
			subPath:  "./app/",
			files:    map[string]string{"main.go": "app/main.go"},
			excluded: []string{"secret"},
		},
	}
	for _, src := range suiteSources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					spec, opts := src.make(t)
					opts = append(opts, WithTempDir(t.TempDir()))
					if tt.subPath != "" {
						opts = append(opts, WithSubPath(tt.subPath))
					}
					c, err := Open(context.Background(), spec, opts...)
					if err != nil {
						t.Fatalf("Open(%q): %v", spec, err)
					}
					defer c.Close()
					for rel, from := range tt.files {
						want := suiteTree[from]
						path := filepath.Join(c.Dir, rel)
						got, err := os.ReadFile(path)
						if err != nil || string(got) != want.content {
							t.Errorf("%s = %q, %v; want %q", rel, got, err, want.content)
							continue
						}
						fi, err := os.Lstat(path)
						if err != nil {
							t.Fatal(err)
						}
						if x := fi.Mode().Perm() & 0o100; x != want.mode&0o100 {
							t.Errorf("%s: mode %v, want the x bit of %v", rel, fi.Mode(), want.mode)
						}
						if src.name != "git" && fi.Mode().Perm() != want.mode {
							t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), want.mode)
						}
					}
					for _, rel := range tt.excluded {
						if !c.Excluded(rel) {
							t.Errorf("%s is not excluded by .dockerignore %v", rel, c.Patterns)
						}
					}
					for _, rel := range tt.included {
						if c.Excluded(rel) {
							t.Errorf("%s is excluded by .dockerignore %v", rel, c.Patterns)
						}
					}
				})
			}
		})
	}
}
