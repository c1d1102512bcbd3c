package snapshot

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTime is a fixed mtime with a sub-second part, to see truncation.
var testTime = time.Date(2021, 3, 4, 5, 6, 7, 890, time.UTC)

// ent describes one tar entry for makeTar.
type ent struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     string
	link     string
	xattrs   map[string]string
	mtime    time.Time
	major    int64
	minor    int64
}

func dir(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func file(name, body string) ent      { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}
func whiteoutEnt(dir, name string) ent  { return file(filepath.Join(dir, whiteoutPrefix+name), "") }
func opaqueEnt(dir string) ent          { return file(filepath.Join(dir, opaqueMarker), "") }
func withMode(e ent, mode int64) ent    { e.mode = mode; return e }
func withOwner(e ent, uid, gid int) ent { e.uid, e.gid = uid, gid; return e }
func withMtime(e ent, t time.Time) ent  { e.mtime = t; return e }
func withXattr(e ent, k, v string) ent  { e.xattrs = map[string]string{k: v}; return e }
func device(name string, typ byte, ma, mi int64) ent {
	return ent{name: name, typ: typ, mode: 0o600, major: ma, minor: mi}
}

// makeTar returns an uncompressed tar of entries, in order.
func makeTar(t testing.TB, entries ...ent) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mt := e.mtime
		if mt.IsZero() {
			mt = testTime
		}
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, ModTime: mt, Devmajor: e.major, Devminor: e.minor,
			Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[paxXattrPrefix+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// listOpts select what listTree shows beyond path, type, mode and owner.
type listOpts struct {
	times bool // mtime in whole seconds
	nlink bool // link count of regular files
}

// listTree describes every path below root, one sorted line each.
func listTree(t testing.TB, root string, o listOpts) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel := "/" + filepath.ToSlash(p[len(root)+1:])
		uid, gid := int(st.Uid), int(st.Gid)
		if uid == os.Geteuid() && gid == os.Getegid() {
			uid, gid = 0, 0 // what root would get, so listings hold for any user
		}
		line := fmt.Sprintf("%s %04o %d:%d", rel, st.Mode&0o7777, uid, gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			line += " dir"
		case unix.S_IFREG:
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" file %q", body)
			if o.nlink {
				line += fmt.Sprintf(" nlink=%d", st.Nlink)
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case unix.S_IFIFO:
			line += " fifo"
		case unix.S_IFCHR:
			line += fmt.Sprintf(" char %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			line += fmt.Sprintf(" block %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		default:
			line += " other"
		}
		if o.times {
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return lines
}

// writeFiles creates files (path -> content) below root, with parents 0755.
func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		host := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func skipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// mkSocket binds a unix socket at p, which stays as a socket file.
func mkSocket(t testing.TB, p string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	mustDo(t, err)
	defer unix.Close(fd)
	mustDo(t, unix.Bind(fd, &unix.SockaddrUnix{Name: p}))
}
