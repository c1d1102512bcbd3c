package copier

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Select reports exactly the paths Copy reads: for every case, what it selects (with
// the directories a re-included path implies) is what a copy into an empty root writes
// below the destination.
func TestSelect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sources  []string
		excluded []string // exact paths and their subtrees
		keep     []string // re-included below an excluded path
		want     []string
		wantErr  string
	}{
		{name: "file", sources: []string{"a"}, want: []string{"a"}},
		{name: "directory", sources: []string{"d"}, excluded: []string{"d/x"}, want: []string{"d", "d/sub", "d/sub/z", "d/y"}},
		{name: "wildcard", sources: []string{"*.md"}, want: []string{"one.md", "two.md"}},
		{name: "re-included", sources: []string{"d"}, excluded: []string{"d/sub"}, keep: []string{"d/sub/z"}, want: []string{"d", "d/sub/z", "d/x", "d/y"}},
		{name: "url", sources: []string{"https://127.0.0.1/x"}, wantErr: ErrRemoteSource.Error()},
		{name: "missing", sources: []string{"nothere"}, wantErr: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			makeTree(t, root, "a=A", "one.md=1", "two.md=2", "d/", "d/x=X", "d/y=Y", "d/sub/", "d/sub/z=Z")
			excluded := func(rel string) bool {
				for _, k := range tc.keep {
					if rel == k {
						return false
					}
				}
				for _, e := range tc.excluded {
					if rel == e || strings.HasPrefix(rel, e+"/") {
						return true
					}
				}
				return false
			}
			src := Source{Root: root, Excluded: excluded, NoExceptions: len(tc.keep) == 0, Context: true}
			var got []string
			err := Select(context.Background(), src, Request{Sources: tc.sources}, func(s Selected) error {
				got = append(got, s.Rel)
				return nil
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if tc.name == "url" && !errors.Is(err, ErrRemoteSource) {
					t.Errorf("error %v does not wrap ErrRemoteSource", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("selected (-want +got):\n%s", d)
			}
			// The copy writes what was selected, under the destination.
			dst := t.TempDir()
			touched, err := Copy(context.Background(), src, dst, Request{Sources: tc.sources, Dest: "/out/"})
			if err != nil {
				t.Fatal(err)
			}
			var written []string
			for _, p := range touched {
				if strings.HasPrefix(p, "/out/") {
					written = append(written, strings.TrimPrefix(p, "/out/"))
				}
			}
			var fromSelect []string
			for _, rel := range got {
				if tc.name == "directory" || tc.name == "re-included" {
					// A directory source's contents land in the destination itself.
					if rel == "d" {
						continue
					}
					rel = strings.TrimPrefix(rel, "d/")
				}
				// Directories implied by a re-included path are created too.
				for dir := path.Dir(rel); dir != "." && !slices.Contains(fromSelect, dir); dir = path.Dir(dir) {
					fromSelect = append(fromSelect, dir)
				}
				fromSelect = append(fromSelect, path.Clean(rel))
			}
			if d := cmp.Diff(sortedCopy(fromSelect), sortedCopy(written)); d != "" {
				t.Errorf("selected vs written (-selected +written):\n%s", d)
			}
		})
	}
}

func sortedCopy(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}
