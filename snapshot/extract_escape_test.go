package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExtractEscapes feeds hostile layers and checks that nothing beside the root
// changed: each must fail or keep its writes inside the root.
func TestExtractEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// layer gets the sentinel directory's host path, for links aimed at it.
		layer   func(outside string) []ent
		wantErr bool
	}{{
		name:    "dotdot name",
		layer:   func(string) []ent { return []ent{file("../../x", "x")} },
		wantErr: true,
	}, {
		name:    "dotdot inside name",
		layer:   func(string) []ent { return []ent{file("a/../../outside/x", "x")} },
		wantErr: true,
	}, {
		// Writes through links to "/" aim at the sentinel's host path, so that a
		// broken implementation hits the sentinel, never the machine's real files.
		name: "symlink to / then write through it",
		layer: func(out string) []ent {
			return []ent{symlink("evil", "/"), file("evil"+out+"/pwned", "x"), file("evil"+out+"/secret", "x")}
		},
	}, {
		name: "relative symlink climbing out then write through it",
		layer: func(out string) []ent {
			return []ent{symlink("evil", "../../../../../../../../.."), file("evil"+out+"/pwned", "x"), file("evil"+out+"/secret", "x")}
		},
	}, {
		name: "absolute symlink to the sentinel then write through it",
		layer: func(out string) []ent {
			return []ent{symlink("evil", out), file("evil/secret", "pwned"), dir("evil/sub/", 0o777)}
		},
	}, {
		name: "file entry replaces a symlink instead of writing its target",
		layer: func(out string) []ent {
			return []ent{symlink("evil", filepath.Join(out, "secret")), file("evil", "pwned")}
		},
	}, {
		name:  "dir entry replaces a symlink instead of chmod-ing its target",
		layer: func(out string) []ent { return []ent{symlink("evil", out), dir("evil/", 0o777)} },
	}, {
		name:    "hardlink target escapes",
		layer:   func(string) []ent { return []ent{hardlink("h", "../outside/secret")} },
		wantErr: true,
	}, {
		name: "hardlink through a symlinked dir stays inside",
		layer: func(out string) []ent {
			return []ent{symlink("evil", out), hardlink("h", "evil/secret")}
		},
		wantErr: true, // the target does not exist inside the root
	}, {
		name:  "hardlink to a symlink links the symlink",
		layer: func(out string) []ent { return []ent{symlink("l", filepath.Join(out, "secret")), hardlink("h", "l")} },
	}, {
		name: "whiteout and opaque through a symlink",
		layer: func(out string) []ent {
			return []ent{symlink("evil", out), whiteoutEnt("evil", "secret"), opaqueEnt("evil")}
		},
	}, {
		name: "dir replaced by symlink mid-stream",
		layer: func(out string) []ent {
			return []ent{dir("d/", 0o755), file("d/x", "x"), symlink("d", out), file("d/secret", "pwned"), dir("d/y/", 0o755)}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			root := filepath.Join(tmp, "root")
			outside := filepath.Join(tmp, "outside")
			mustDo(t, os.Mkdir(root, 0o755))
			writeFiles(t, outside, map[string]string{"secret": "s"})
			before := listTree(t, outside, listOpts{times: true, nlink: true})

			err := Extract(context.Background(), root, "/", makeTar(t, tt.layer(outside)...))
			if tt.wantErr && err == nil {
				t.Error("Extract succeeded, want an error")
			}
			if !tt.wantErr && err != nil {
				t.Errorf("Extract: %v", err)
			}
			after := listTree(t, outside, listOpts{times: true, nlink: true})
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("sentinel beside the root changed (-before +after):\n%s", diff)
			}
			entries, err := os.ReadDir(tmp)
			mustDo(t, err)
			if len(entries) != 2 {
				t.Errorf("temp dir holds %d entries, want root and outside only", len(entries))
			}
			fi, err := os.Stat(outside)
			mustDo(t, err)
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("sentinel mode changed to %v", fi.Mode())
			}
		})
	}
}
