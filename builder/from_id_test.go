package builder_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

// The ID announced after FROM is the base's own, as dockerd's classic builder prints
// it (checked against dockerd 20.10): a pulled image's ID (its config digest) on every
// build, none for scratch, and an earlier stage's final ID for FROM <stage>. It used to
// be a new ID per build.
func TestFromStepID(t *testing.T) {
	w := newWorld(t)
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
	const dockerfile = "FROM BUSYBOX AS base\nRUN echo x > /x\nFROM scratch\nCOPY --from=base /x /x\nFROM base\nENV A=1\n"
	for _, tc := range []struct {
		name  string
		cache bool // with a base cache: the ID comes from the cached manifest
	}{{name: "registry"}, {name: "base cache", cache: true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws := builder.Workspace{Isolation: isolation.Chroot}
			if tc.cache {
				ws.BaseCache = t.TempDir()
			}
			var first map[int]v1.Hash
			for run := 0; run < 2; run++ {
				ws.StateDir = t.TempDir()
				ids := stepIDs(t, w, dockerfile, ws)
				if ids[1] != baseID {
					t.Errorf("build %d: FROM %s announced %s, want the base's ID %s", run+1, w.busybox, ids[1], baseID)
				}
				if ids[3] != (v1.Hash{}) {
					t.Errorf("build %d: FROM scratch announced %s, want no ID", run+1, ids[3])
				}
				if ids[5] != ids[2] || ids[2] == (v1.Hash{}) {
					t.Errorf("build %d: FROM base announced %s, want the stage's last ID %s", run+1, ids[5], ids[2])
				}
				if first == nil {
					first = ids
				} else if first[1] != ids[1] {
					t.Errorf("FROM announced %s, then %s: want the same ID on every build", first[1], ids[1])
				}
			}
		})
	}
}

// stepIDs builds dockerfile and returns the ID announced after each step.
func stepIDs(t *testing.T, w *world, dockerfile string, ws builder.Workspace) map[int]v1.Hash {
	t.Helper()
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]v1.Hash{}
	_, err = builder.Build(context.Background(), &builder.Request{
		Dockerfile: []byte(strings.ReplaceAll(dockerfile, "BUSYBOX", w.busybox)),
		Context:    bctx,
	},
		builder.WithWorkspace(ws),
		builder.WithEvents(func(e builder.Event) {
			if d, ok := e.(builder.StepDone); ok {
				ids[d.Step] = d.ImageID
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A Dockerfile of one FROM gives the base image itself, with its ID, as Docker's
// classic builder does ("Successfully built" names the base); it used to give a new
// image, with a new ID, on every build.
func TestFromOnlyIsTheBase(t *testing.T) {
	w := newWorld(t)
	ref, err := name.ParseReference(w.busybox)
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	baseDigest, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	baseID, err := base.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		dockerfile string
		cache      bool
		same       bool
	}{
		{name: "FROM alone", dockerfile: "FROM BUSYBOX\n", same: true},
		{name: "FROM alone, base cache", dockerfile: "FROM BUSYBOX\n", cache: true, same: true},
		{name: "FROM a stage that is FROM alone", dockerfile: "FROM BUSYBOX AS b\nFROM b\n", same: true},
		{name: "a step changes it", dockerfile: "FROM BUSYBOX\nENV A=1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}
			if tc.cache {
				ws.BaseCache = t.TempDir()
			}
			bctx, err := contexts.FromDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			res, err := builder.Build(context.Background(), &builder.Request{
				Dockerfile: []byte(strings.ReplaceAll(tc.dockerfile, "BUSYBOX", w.busybox)), Context: bctx,
			}, builder.WithWorkspace(ws))
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(outputImage(t, res.Image)); err != nil {
				t.Fatalf("invalid image: %v", err)
			}
			d, err := res.Image.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got := d == baseDigest && res.ID == baseID; got != tc.same {
				t.Errorf("image %s with ID %s; base %s with ID %s: same = %v, want %v", d, res.ID, baseDigest, baseID, got, tc.same)
			}
		})
	}
}
