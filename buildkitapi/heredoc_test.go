package buildkitapi

import (
	"archive/tar"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	bkclient "github.com/moby/buildkit/client"
)

// Heredocs reach the builder through the BuildKit front door too: a RUN's body runs, a
// COPY's body becomes a file.
func TestSolveHeredocs(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + ts.busybox + "\nARG V=arg\nCOPY <<EOF /copied\nv=$V\nEOF\nRUN <<EOF\n#!/bin/sh\necho \"$0\" > /ran\nEOF\n",
	})
	if _, _, err := ts.solve(t, dir, nil, bkclient.ExportEntry{Type: "image", Attrs: map[string]string{"name": "kiln-test/heredoc:1"}}); err != nil {
		t.Fatal(err)
	}
	img, _, err := ts.store.Resolve("kiln-test/heredoc:1")
	if err != nil {
		t.Fatalf("the image is not in the store: %v", err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := strings.TrimPrefix(h.Name, "/"); name == "copied" || name == "ran" {
			data, _ := io.ReadAll(tr)
			got[name] = string(data)
		}
	}
	if got["copied"] != "v=arg\n" || got["ran"] != "/dev/pipes/EOF\n" {
		t.Errorf("files %q, want copied=\"v=arg\\n\" and ran=\"/dev/pipes/EOF\\n\"", got)
	}
}
