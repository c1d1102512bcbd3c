package copier

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAddArchive checks that ADD extracts local tar archives (detected by content)
// into the destination, keeping the archive's owners, while COPY and non-archives
// are copied as files.
func TestAddArchive(t *testing.T) {
	t.Parallel()
	needRoot(t) // archive owners are applied only as root
	entries := []tarEntry{
		{name: "top", typ: tar.TypeDir, mode: 0o750, uid: 5, gid: 6},
		{name: "top/file", body: "content", mode: 0o640, uid: 7, gid: 8},
		{name: "top/.wh.literal", body: "not a whiteout"},
		{name: "top/link", typ: tar.TypeSymlink, link: "file"},
		{name: "top/hard", typ: tar.TypeLink, link: "top/file"},
	}
	bz2, err := os.ReadFile(filepath.Join("testdata", "inside.tar.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	no := false
	cases := []copyCase{
		{name: "plain-new-dest", req: Request{Sources: []string{"a.tar"}, Dest: "/x/y", Add: true, Chown: &Owner{UID: 9, GID: 9}},
			wantTouched: []string{"/x", "/x/y", "/x/y/top", "/x/y/top/.wh.literal", "/x/y/top/file", "/x/y/top/hard", "/x/y/top/link"}},
		{name: "gzip-existing-dest", root: []spec{"opt mode=0700 owner=1:1", "opt/top/old=keep"},
			req: Request{Sources: []string{"a.tgz"}, Dest: "/opt", Add: true}},
		{name: "bzip2", req: Request{Sources: []string{"bz.dat"}, Dest: "/b/", Add: true}},
		{name: "xz-wildcard", req: Request{Sources: []string{"*.xz"}, Dest: "/w/", Add: true}},
		{name: "copy-does-not-extract", req: Request{Sources: []string{"a.tar"}, Dest: "/c/"}},
		{name: "unpack-false", req: Request{Sources: []string{"a.tgz"}, Dest: "/u/", Add: true, Unpack: &no}},
		{name: "add-plain-file", req: Request{Sources: []string{"plain.txt"}, Dest: "/p/", Add: true}},
		{name: "dest-is-file", root: []spec{"f=x"}, req: Request{Sources: []string{"a.tar"}, Dest: "/f", Add: true},
			wantErr: "not a directory"},
	}
	for _, tc := range cases {
		tc.owners = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The context is filled here: archives are bytes, not specs.
			base := t.TempDir()
			write := func(name string, data []byte) {
				if err := os.WriteFile(filepath.Join(base, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("a.tar", plainTar(t, entries...))
			write("a.tgz", gzipTar(t, entries...))
			write("bz.dat", bz2)
			write("c.tar.xz", xzTar(t, tarEntry{name: "from-xz", body: "xz"}))
			write("plain.txt", []byte("plain"))
			root := t.TempDir()
			makeTree(t, root, tc.root...)
			req := tc.req
			if req.Chown == nil {
				req.Chown = &Owner{}
			}
			touched, err := Copy(context.Background(), Source{Root: base, Context: true}, root, req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Copy error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantTouched != nil {
				if diff := cmp.Diff(tc.wantTouched, touched); diff != "" {
					t.Errorf("touched (-want +got):\n%s", diff)
				}
			}
			golden(t, "add/"+tc.name, listing(t, root, listOpts{owners: true}))
		})
	}
}
