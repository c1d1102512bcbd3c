package apiserver

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The line after each FROM names the base's ID as dockerd's classic builder prints it
// (dockerd 20.10, FROM 127.0.0.1:5000/busybox:1.35): the image's ID, the same on every
// build; nothing for scratch (" ---> \n"); an earlier stage's last ID.
func TestBuildStreamFromIDs(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	ref, err := name.ParseReference(w.busybox)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	baseID, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM " + w.busybox + " AS base\nRUN true\nFROM scratch\nCOPY --from=base /bin/busybox /bb\nFROM base\nENV A=1\n"
	body := contextTar(t, map[string]string{"Dockerfile": df})
	// " ---> <id>" lines after each "Step N/6 : ..." line, by step.
	stepID := regexp.MustCompile(`(?m)^Step (\d)/6 : [^\n]*\n(?:[^\n]*\n)*? ---> ([0-9a-f]{12})?\n`)
	for run := 1; run <= 2; run++ {
		resp := postBuild(t, ts.URL, "nocache=1", body, nil)
		if resp.status != http.StatusOK || resp.last().Error != "" {
			t.Fatalf("HTTP %d: %s", resp.status, resp.body)
		}
		ids := map[string]string{}
		for _, m := range stepID.FindAllStringSubmatch(resp.text(), -1) {
			ids[m[1]] = m[2]
		}
		if ids["1"] != baseID.Hex[:12] {
			t.Errorf("build %d: after FROM %s: %q, want the base's ID %s\n%s", run, w.busybox, ids["1"], baseID.Hex[:12], resp.text())
		}
		if id, ok := ids["3"]; !ok || id != "" {
			t.Errorf("build %d: after FROM scratch: %q, want \" ---> \" with no ID\n%s", run, id, resp.text())
		}
		if !strings.Contains(resp.text(), "Step 3/6 : FROM scratch\n ---> \n") {
			t.Errorf("build %d: FROM scratch is not followed by \" ---> \\n\":\n%s", run, resp.text())
		}
		if ids["5"] == "" || ids["5"] != ids["2"] {
			t.Errorf("build %d: after FROM base: %q, want the stage's last ID %q\n%s", run, ids["5"], ids["2"], resp.text())
		}
	}
}

// docker build --platform goes through the engine: a base without the platform is an
// error in the stream naming the image, the platform and what the image has.
func TestBuildPlatformMismatch(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN true\n"})
	resp := postBuild(t, ts.URL, "platform=linux/arm64", body, nil)
	want := "no match for platform in manifest: " + w.busybox + " is an image for linux/amd64, not linux/arm64"
	got := resp.body
	if resp.status == http.StatusOK {
		got = resp.last().Error
	}
	if !strings.Contains(got, want) || !strings.Contains(got, "Dockerfile:1") {
		t.Errorf("HTTP %d, error %q; want one naming Dockerfile:1 and containing %q", resp.status, got, want)
	}
}

// A Dockerfile of one FROM builds the base itself, as dockerd does: the ID after FROM,
// the aux ID and "Successfully built" all name the base's ID.
func TestBuildFromOnly(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	ref, err := name.ParseReference(w.busybox)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	baseID, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\n"})
	resp := postBuild(t, ts.URL, "t=fromonly", body, nil)
	if resp.status != http.StatusOK || resp.last().Error != "" {
		t.Fatalf("HTTP %d: %s", resp.status, resp.body)
	}
	short := baseID.Hex[:12]
	if want := " ---> " + short + "\nSuccessfully built " + short + "\n"; !strings.Contains(resp.text(), want) {
		t.Errorf("stream:\n%s\nwant it to contain %q", resp.text(), want)
	}
	_, im, err := ts.store.Resolve("fromonly")
	if err != nil {
		t.Fatal(err)
	}
	if im.ID != baseID {
		t.Errorf("stored image %s, want the base %s", im.ID, baseID)
	}
}
