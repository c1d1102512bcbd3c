package copier

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/snapshot"
)

// planCase is one COPY run through both paths: written into the root and the layer
// read back from it (the slow path), and planned (Request.Plan, the fast path).
type planCase struct {
	name    string
	context []spec // the build context (or --from root)
	ignore  string // .dockerignore content
	root    []spec // the build root before the copy
	from    bool   // the source is a --from root: owners are kept
	req     Request
	// heredocs, when set, is a second source tree copied to req.Dest after the first,
	// as a COPY's here-documents are, sharing its plan.
	heredocs []spec
	planned  bool // the fast path must have planned files (else the case proves nothing)
	wantErr  bool // both paths must fail, with the same message
}

func TestPlanSameLayer(t *testing.T) {
	needRoot(t)
	t.Parallel()
	src := []spec{
		"f=file-content",
		"exe=#!/bin/sh\n mode=4755 mtime=1000000000",
		"a.txt=alpha mtime=1500000000",
		"b.txt=bravo mode=0600",
		"c.log=log",
		"dir/one=1 owner=7:8",
		"dir/sub/two=2 mode=0640 owner=9:9",
		"dir/sub mode=0750",
		"dir/empty/",
		"dir/link->one",
		"dir/dangling->nowhere",
		"dir/h1=shared mtime=1234567890",
		"dir/h2=>dir/h1",
		"dir/z/h3=>dir/h1",
		"dir/skip/x=x",
		"dir/skip/keep=k",
		"dir/x.log=l",
		"arch.tar=not-really-a-tar",
	}
	cases := []planCase{
		{name: "dir-into-new-dest", context: src, req: Request{Sources: []string{"dir"}, Dest: "/new/deep/"}, planned: true},
		{name: "dir-merge-existing", context: src, root: []spec{"dst/one=old", "dst/sub/", "dst/keep=k mode=0700", "dst mode=0711 owner=3:3 mtime=1000"},
			req: Request{Sources: []string{"dir"}, Dest: "/dst"}, planned: true},
		{name: "file-to-dir", context: src, root: []spec{"dst/ mtime=1000"}, req: Request{Sources: []string{"f"}, Dest: "/dst/"}, planned: true},
		{name: "files-into-old-dirs", context: src, root: []spec{"w/ mtime=1000", "w/dir/sub/ mtime=1000", "w/dir mtime=1000"},
			req: Request{Sources: []string{"a.txt", "dir"}, Dest: "/w/"}, planned: true},
		{name: "file-to-new-path", context: src, req: Request{Sources: []string{"a.txt"}, Dest: "/p/q/r"}, planned: true},
		{name: "file-over-dir", context: src, root: []spec{"dst/r/old=1"}, req: Request{Sources: []string{"f"}, Dest: "/dst/r"}, planned: true},
		{name: "file-over-file", context: src, root: []spec{"dst/r=old mode=0600"}, req: Request{Sources: []string{"f"}, Dest: "/dst/r"}, planned: true},
		{name: "relative-dest", context: src, req: Request{Sources: []string{"f"}, Dest: "rel/", WorkDir: "/work"}, planned: true},
		{name: "wildcard", context: src, req: Request{Sources: []string{"*.txt", "d?r"}, Dest: "/w/"}, planned: true},
		{name: "chown-id", context: src, req: Request{Sources: []string{"dir", "f"}, Dest: "/o/", Chown: &Owner{UID: 1000, GID: 1001}}, planned: true},
		{name: "chown-existing-parent", context: src, root: []spec{"o owner=5:5"}, req: Request{Sources: []string{"f"}, Dest: "/o/n/", Chown: &Owner{UID: 42, GID: 43}}, planned: true},
		{name: "chmod", context: src, req: Request{Sources: []string{"dir", "exe"}, Dest: "/m/", Chmod: mustChmod(t, "0750")}, planned: true},
		{name: "chmod-symbolic", context: src, req: Request{Sources: []string{"dir"}, Dest: "/m/", Chmod: mustChmod(t, "u+x,g-r")}, planned: true},
		{name: "setuid-kept", context: src, req: Request{Sources: []string{"exe"}, Dest: "/bin/"}, planned: true},
		{name: "symlink-in-dest", context: src, root: []spec{"real/", "link->real", "abs->/real"},
			req: Request{Sources: []string{"f", "dir"}, Dest: "/link/sub/"}, planned: true},
		{name: "symlink-last-in-dest", context: src, root: []spec{"real/target=old", "ln->real/target"},
			req: Request{Sources: []string{"f"}, Dest: "/ln"}, planned: true},
		{name: "symlink-abs-in-dest", context: src, root: []spec{"real/", "abs->/real"},
			req: Request{Sources: []string{"dir"}, Dest: "/abs/in"}, planned: true},
		{name: "dest-through-file", context: src, root: []spec{"file=x"},
			req: Request{Sources: []string{"f"}, Dest: "/file/x"}, wantErr: true},
		{name: "hardlinks-one-excluded", context: src, req: Request{Sources: []string{"dir"}, Dest: "/h/", Exclude: []string{"h2", "z"}}, planned: true},
		{name: "dockerignore", context: src, ignore: "dir/skip\n*.log\n", req: Request{Sources: []string{"."}, Dest: "/ig/"}, planned: true},
		{name: "dockerignore-exception", context: src, ignore: "dir/skip\n!dir/skip/keep\n", req: Request{Sources: []string{"dir"}, Dest: "/ig/"}, planned: true},
		{name: "link", context: src, root: []spec{"l->elsewhere", "dst/old=1"}, req: Request{Sources: []string{"dir"}, Dest: "/dst/", Link: true}},
		{name: "exclude", context: src, req: Request{Sources: []string{"dir"}, Dest: "/ex/", Exclude: []string{"*.log", "sub"}}, planned: true},
		{name: "parents", context: src, req: Request{Sources: []string{"dir/sub/two", "dir/h1"}, Dest: "/par/", Parents: true}, planned: true},
		{name: "from-keeps-owners", context: src, from: true, req: Request{Sources: []string{"dir"}, Dest: "/fr/"}, planned: true},
		{name: "heredoc-after-sources", context: src, heredocs: []spec{"f=from-heredoc mode=0644", "extra=e"},
			req: Request{Sources: []string{"f", "a.txt"}, Dest: "/hd/"}, planned: true},
		{name: "heredoc-dir-over-file", context: src, heredocs: []spec{"f/x=dir-where-a-file-was"},
			req: Request{Sources: []string{"f"}, Dest: "/hd/"}, planned: true},
		{name: "later-source-replaces-file-with-dir", context: []spec{"a/x=file", "b/x/y=in-dir", "b/x mode=0700"},
			req: Request{Sources: []string{"a/", "b/"}, Dest: "/d/"}, planned: true},
		{name: "later-source-replaces-dir-with-file", context: []spec{"a/x/y=in-dir", "a/x/z/w=deep", "b/x=file"},
			req: Request{Sources: []string{"a/", "b/"}, Dest: "/d/"}, planned: true},
		{name: "later-source-merges-into-new-dir", context: []spec{"a/x/y=first", "a/x/w=only-a", "b/x/y=second", "b/x/z=only-b"},
			req: Request{Sources: []string{"a/", "b/"}, Dest: "/d/"}, planned: true},
		{name: "add-local-files", context: src, req: Request{Sources: []string{"dir", "f"}, Dest: "/add/", Add: true}, planned: true},
		{name: "add-non-archive-tar-name", context: src, req: Request{Sources: []string{"arch.tar"}, Dest: "/add/", Add: true}, planned: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Directories the copy creates get the time of creation, in whole seconds in
			// the layer: both paths must run within one second to compare them.
			for attempt := 0; ; attempt++ {
				start := time.Now().Unix()
				slow, fast := tc.run(t)
				if time.Now().Unix() != start && attempt < 5 {
					continue
				}
				if tc.wantErr {
					if slow.err == "" || slow.err != fast.err {
						t.Errorf("errors: slow path %q, fast path %q; want the same error", slow.err, fast.err)
					}
					return
				}
				if diff := cmp.Diff(slow.entries, fast.entries); diff != "" {
					t.Errorf("layer entries differ (-slow +fast):\n%s", diff)
				}
				if slow.diffID != fast.diffID {
					t.Errorf("diffID: slow path %s, fast path %s", slow.diffID, fast.diffID)
				}
				if slow.tree != fast.tree {
					t.Errorf("root after extracting the fast path's layer differs (-slow +fast):\n%s", cmp.Diff(slow.tree, fast.tree))
				}
				if tc.planned && fast.planned == 0 {
					t.Errorf("the fast path planned no file")
				}
				return
			}
		})
	}
}

// planResult is what one path gave.
type planResult struct {
	diffID  string
	entries string // the layer's entries, for messages
	tree    string // the root's listing after the copy (slow) or after extracting its layer (fast)
	planned int
	err     string // Copy's error
}

func (tc planCase) run(t *testing.T) (slow, fast planResult) {
	t.Helper()
	base := t.TempDir()
	ctxDir, hdDir := filepath.Join(base, "context"), filepath.Join(base, "heredocs")
	src := sourceTree(t, ctxDir, tc.ignore, tc.from, tc.context...)
	makeTree(t, hdDir, tc.heredocs...)
	for i, fastPath := range []bool{false, true} {
		root := filepath.Join(base, []string{"slow", "fast"}[i])
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		makeTree(t, root, tc.root...)
		req := tc.req
		req.TempDir = base
		if fastPath {
			req.Plan = snapshot.NewPlan()
		}
		touched, err := Copy(context.Background(), src, root, req)
		if tc.wantErr {
			r := planResult{err: fmt.Sprint(err)}
			if err == nil {
				r.err = ""
			}
			if fastPath {
				fast = r
			} else {
				slow = r
			}
			continue
		}
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		if len(tc.heredocs) > 0 {
			hreq := req
			hreq.Sources, hreq.Add, hreq.Parents, hreq.Exclude = []string{"."}, false, false, nil
			more, err := Copy(context.Background(), Source{Root: hdDir, Context: true}, root, hreq)
			if err != nil {
				t.Fatalf("Copy of the here-documents: %v", err)
			}
			touched = append(touched, more...)
		}
		blobs := filepath.Join(base, "blobs"+root[len(root)-4:])
		if err := os.Mkdir(blobs, 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := snapshot.WriteLayer(context.Background(), root, blobs, &snapshot.Changes{Changed: touched},
			snapshot.WithCompression(snapshot.Uncompressed), snapshot.WithPlan(req.Plan))
		if err != nil {
			t.Fatalf("WriteLayer: %v", err)
		}
		d, _ := l.DiffID()
		r := planResult{diffID: d.String(), entries: tarListing(t, l.Path()), planned: req.Plan.Len()}
		if fastPath {
			// What a later reader of the root gets (stage.catchUp): the layer
			// extracted over the root the fast path left.
			f, err := os.Open(l.Path())
			if err != nil {
				t.Fatal(err)
			}
			err = snapshot.Extract(context.Background(), root, "/", f)
			f.Close()
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
		}
		r.tree = listing(t, root, listOpts{owners: true, mtimes: true})
		if fastPath {
			fast = r
		} else {
			slow = r
		}
	}
	return slow, fast
}

// tarListing describes a layer tar's entries, one line each, in order.
func tarListing(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s %c %o %d:%d %d size=%d link=%q pax=%v %q\n", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid,
			h.ModTime.Unix(), h.Size, h.Linkname, h.PAXRecords, body)
	}
}
