package builder_test

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// linkedDockerfile has a COPY --link between two RUNs; MARK changes the state the COPY
// starts from, WORKDIR the directory its relative destination is in.
const linkedDockerfile = `FROM BUSYBOX
WORKDIR /work
RUN echo MARK > /marker
COPY --link a.txt ./out/
RUN cat out/a.txt /marker > /both
`

// A COPY --link layer is reused when the state under it changed, as BuildKit rebases
// it: same layer, laid on the new state; the steps after it run again. A plain COPY
// misses there, and a --link COPY whose working directory changed misses too.
func TestCacheLinkedCopyReusedOnNewBase(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a.txt": "A\n"})
	df := func(mark, flags, workdir string) string {
		s := strings.ReplaceAll(linkedDockerfile, "MARK", mark)
		s = strings.ReplaceAll(s, "--link", flags)
		return strings.ReplaceAll(s, "/work", workdir)
	}
	copyText := func(flags string) string { return "COPY " + flags + " a.txt ./out/" }
	linkLayer := func(r interface {
		ConfigFile() (*v1.ConfigFile, error)
	}) v1.Hash {
		t.Helper()
		cf, err := r.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-2] // the COPY's, under the last RUN's
	}

	first := cw.build(t, df("one", "--link", "/work"), nil)
	second := cw.build(t, df("two", "--link", "/work"), nil)
	if _, missed := second.misses[copyText("--link")]; missed {
		t.Errorf("COPY --link on a new state missed: %q", second.misses[copyText("--link")])
	}
	if !slices.Contains(second.hits, copyText("--link")) {
		t.Errorf("hits %q, want the COPY --link among them", second.hits)
	}
	if _, ok := second.misses["RUN cat out/a.txt /marker > /both"]; !ok {
		t.Errorf("the RUN after the reused layer hit; its state changed, it must run")
	}
	if a, b := linkLayer(first.res.Image), linkLayer(second.res.Image); a != b {
		t.Errorf("COPY --link layer %s on the new state, want the first build's %s", b, a)
	}
	wantFiles(t, files(t, second.res.Image), map[string]string{
		"/work/out/a.txt": "f 0644 0:0 A\n",
		"/marker":         "f 0644 0:0 two\n",
		"/both":           "f 0644 0:0 A\ntwo\n",
	})

	// Without --link the state is part of the key.
	cw.build(t, df("one", "", "/work"), nil)
	plain := cw.build(t, df("two", "", "/work"), nil)
	if _, missed := plain.misses[copyText("")]; !missed {
		t.Errorf("a plain COPY on a new state hit; want a miss")
	}

	// The working directory is: ./out/ is another place there.
	moved := cw.build(t, df("two", "--link", "/elsewhere"), nil)
	if _, missed := moved.misses[copyText("--link")]; !missed {
		t.Errorf("COPY --link in another WORKDIR hit; want a miss")
	}
	wantFiles(t, files(t, moved.res.Image), map[string]string{"/elsewhere/out/a.txt": "f 0644 0:0 A\n"})
}
