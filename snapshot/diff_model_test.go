package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// modelDiff is Diff written the plain way, as it was before Diff compared while
// walking: scan the tree whole, then compare the two maps. TestDiffMatchesModel
// holds the walking Diff to it.
func modelDiff(t *testing.T, old map[string]fileInfo, root string, cfg scanConfig) *Changes {
	t.Helper()
	curIx, err := scan(context.Background(), root, cfg, 0)
	mustDo(t, err)
	cur := curIx.files
	ch := &Changes{}
	opaque, changed := map[string]bool{}, map[string]bool{}
	for p, n := range cur {
		o, ok := old[p]
		switch {
		case !ok:
			changed[p] = true
		case n.isDir() && o.isDir():
			if !sameInode(&o, &n) {
				opaque[p], changed[p] = true, true
			} else if dirChanged(&o, &n) {
				changed[p] = true
			}
		case n.typ() != o.typ():
			changed[p] = true
			if n.isDir() {
				opaque[p] = true
			}
		case fileChanged(cfg.mode, &o, &n):
			changed[p] = true
		}
	}
	for p := range cur {
		if underAny(path.Dir(p), opaque) {
			changed[p] = true
		}
	}
	for p := range old {
		if _, ok := cur[p]; ok {
			continue
		}
		if parent := path.Dir(p); parent != "/" {
			if n, ok := cur[parent]; !ok || !n.isDir() || opaque[parent] {
				continue
			}
		}
		ch.Deleted = append(ch.Deleted, p)
	}
	for p := range changed {
		ch.Changed = append(ch.Changed, p)
	}
	for p := range opaque {
		ch.Opaque = append(ch.Opaque, p)
	}
	sort.Strings(ch.Changed)
	sort.Strings(ch.Deleted)
	sort.Strings(ch.Opaque)
	return ch
}

// mutation is one random change to a test tree.
type mutation func(t *testing.T, rng *rand.Rand, root string, paths []string) (touched []string)

var mutations = []mutation{
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // new file
		dir := randomDir(rng, root, paths)
		p := path.Join(dir, fmt.Sprintf("new%d", rng.IntN(1000)))
		if err := os.WriteFile(filepath.Join(root, p), []byte("new"), 0o644); err != nil {
			return nil // the name is a directory already
		}
		return []string{p}
	},
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // remove a path, subtree and all
		p := paths[rng.IntN(len(paths))]
		mustDo(t, os.RemoveAll(filepath.Join(root, p)))
		return []string{p}
	},
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // replace a directory by a new one
		dir := randomDir(rng, root, paths)
		if dir == "/" {
			return nil
		}
		host := filepath.Join(root, dir)
		mustDo(t, os.Rename(host, host+".old"))
		mustDo(t, os.Mkdir(host, 0o755))
		mustDo(t, os.WriteFile(filepath.Join(host, "kept"), []byte("k"), 0o644))
		mustDo(t, os.RemoveAll(host+".old"))
		return []string{dir}
	},
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // file becomes a directory
		p := paths[rng.IntN(len(paths))]
		host := filepath.Join(root, p)
		mustDo(t, os.RemoveAll(host))
		mustDo(t, os.MkdirAll(filepath.Join(host, "sub"), 0o755))
		return []string{p}
	},
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // directory becomes a symlink
		dir := randomDir(rng, root, paths)
		if dir == "/" {
			return nil
		}
		host := filepath.Join(root, dir)
		mustDo(t, os.RemoveAll(host))
		mustDo(t, os.Symlink("/elsewhere", host))
		return []string{dir}
	},
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // chmod
		p := paths[rng.IntN(len(paths))]
		if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return nil // chmod would follow it
		}
		mustDo(t, os.Chmod(filepath.Join(root, p), os.FileMode(0o700+rng.IntN(0o77))))
		return []string{p}
	},
	func(t *testing.T, rng *rand.Rand, root string, paths []string) []string { // rewrite content
		p := paths[rng.IntN(len(paths))]
		if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		mustDo(t, os.WriteFile(filepath.Join(root, p), []byte(fmt.Sprint(rng.Int())), 0o644))
		return []string{p}
	},
}

// randomDir returns a random directory of the tree, "/" included.
func randomDir(rng *rand.Rand, root string, paths []string) string {
	dirs := []string{"/"}
	for _, p := range paths {
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && fi.IsDir() {
			dirs = append(dirs, p)
		}
	}
	return dirs[rng.IntN(len(dirs))]
}

// treePaths lists the image paths under root.
func treePaths(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	mustDo(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		paths = append(paths, "/"+filepath.ToSlash(rel))
		return nil
	}))
	return paths
}

// TestDiffMatchesModel applies random changes to a tree for many rounds and checks
// each Diff against modelDiff. Half the rounds record a change with Update instead,
// as COPY does, so that shared and updated indexes are chained too.
func TestDiffMatchesModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(16) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 42))
			root := t.TempDir()
			writeFiles(t, root, baseFiles)
			at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			ctx := context.Background()
			ix, err := Scan(ctx, root, WithMode(Mode(seed%3)))
			mustDo(t, err)
			for round := range 40 {
				paths := treePaths(t, root)
				if len(paths) == 0 {
					writeFiles(t, root, baseFiles)
					mustDo(t, ix.Update(root, []string{"/"}))
					paths = treePaths(t, root)
				}
				touched := mutations[rng.IntN(len(mutations))](t, rng, root, paths)
				if rng.IntN(2) == 0 && touched != nil {
					// The builder recorded its own write, as COPY does.
					mustDo(t, ix.Update(root, touched))
					if ch, _, err := ix.Diff(ctx, root); err != nil || !ch.Empty() {
						t.Fatalf("round %d: Diff after Update = %+v, %v; want empty", round, ch, err)
					}
					continue
				}
				if round%3 == 0 {
					setDirTimes(t, root, at) // as the RUN executor restores mount points' parents
				}
				want := modelDiff(t, ix.files, root, ix.cfg)
				got, next, err := ix.Diff(ctx, root)
				mustDo(t, err)
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("round %d: Diff differs from the model (-want +got):\n%s", round, diff)
				}
				ix = next
			}
		})
	}
}

// TestDiffSharedIndex checks that an Index whose files a Diff shared is not changed
// by an Update of the other.
func TestDiffSharedIndex(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, baseFiles)
	ctx := context.Background()
	ix, err := Scan(ctx, root)
	mustDo(t, err)
	ch, next, err := ix.Diff(ctx, root)
	mustDo(t, err)
	if !ch.Empty() {
		t.Fatalf("unchanged tree: %+v", ch)
	}
	writeFiles(t, root, map[string]string{"/etc/added": "a"})
	mustDo(t, next.Update(root, []string{"/etc/added"}))
	if got, want := ix.Len(), len(baseFiles)+8; got != want { // and their 8 directories
		t.Errorf("old index Len() = %d after Update of the shared one, want %d", got, want)
	}
	ch, _, err = ix.Diff(ctx, root)
	mustDo(t, err)
	if !cmp.Equal(ch.Changed, []string{"/etc", "/etc/added"}) {
		t.Errorf("old index sees %v, want [/etc /etc/added]", ch.Changed)
	}
}
