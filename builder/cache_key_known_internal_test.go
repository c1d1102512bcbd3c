package builder

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/builder/copier"
)

// mapDigests is a contexts.FileDigests answering from a map of paths.
type mapDigests map[string]string

func (m mapDigests) FileDigest(rel string, _ fs.FileInfo) (string, bool) {
	d, ok := m[rel]
	return d, ok
}

// TestSourceInputsKnown: digests a context knows stand for its files' content in
// COPY's cache key: the key is the one hashing gives when they are right (so a build
// through the BuildKit door keys its steps as kiln build does), they are used instead
// of reading the files, and the files they do not know are still read.
func TestSourceInputsKnown(t *testing.T) {
	root := t.TempDir()
	for name, data := range map[string]string{"a": "one", "d/b": "two", "d/c": "three"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	src := copier.Source{Root: root, Context: true}
	req := copier.Request{Sources: []string{"a", "d"}}
	hashed, err := sourceInputs(ctx, nil, src, req)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(name string) string {
		t.Helper()
		d, err := fileDigest(filepath.Join(root, name), make([]byte, 4096))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	same := func(a, b []CacheInput) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		name  string
		known mapDigests
		same  bool
	}{
		{"none known", mapDigests{}, true},
		{"all known, right", mapDigests{"a": sum("a"), "d/b": sum("d/b"), "d/c": sum("d/c")}, true},
		{"some known, right", mapDigests{"d/b": sum("d/b")}, true},
		{"one known, wrong (so it is used)", mapDigests{"d/c": sum("a")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sourceInputsKnown(ctx, nil, src, req, tc.known)
			if err != nil {
				t.Fatal(err)
			}
			if same(got, hashed) != tc.same {
				t.Errorf("inputs %v, hashing every file gives %v: same %v, want %v", got, hashed, !tc.same, tc.same)
			}
		})
	}
}
