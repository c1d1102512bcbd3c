package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchTree writes dirs*perDir files of size bytes below root and returns their
// image paths, directories included.
func benchTree(b *testing.B, root string, dirs, perDir, size int) []string {
	b.Helper()
	body := bytes.Repeat([]byte("k"), size)
	var paths []string
	for d := range dirs {
		dir := fmt.Sprintf("/usr/share/d%03d", d)
		mustDo(b, os.MkdirAll(filepath.Join(root, dir), 0o755))
		paths = append(paths, dir)
		for f := range perDir {
			p := fmt.Sprintf("%s/file-%04d.txt", dir, f)
			mustDo(b, os.WriteFile(filepath.Join(root, p), body, 0o644))
			paths = append(paths, p)
		}
	}
	return append(paths, "/usr", "/usr/share")
}

func BenchmarkScan(b *testing.B) {
	root := b.TempDir()
	benchTree(b, root, 200, 100, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(context.Background(), root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiffUnchanged(b *testing.B) {
	root := b.TempDir()
	benchTree(b, root, 200, 100, 0)
	ix, err := Scan(context.Background(), root)
	mustDo(b, err)
	b.ReportAllocs()
	for b.Loop() {
		ch, next, err := ix.Diff(context.Background(), root)
		if err != nil {
			b.Fatal(err)
		}
		if !ch.Empty() {
			b.Fatalf("unchanged tree reported %d changes", len(ch.Changed))
		}
		ix = next
	}
}

func BenchmarkExtract(b *testing.B) {
	src := b.TempDir()
	paths := benchTree(b, src, 20, 100, 4096)
	l, err := WriteLayer(context.Background(), src, b.TempDir(), &Changes{Changed: paths}, WithCompression(Uncompressed))
	mustDo(b, err)
	layer, err := os.ReadFile(l.Path())
	mustDo(b, err)
	root := b.TempDir()
	b.SetBytes(int64(len(layer)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Extract(context.Background(), root, "/", bytes.NewReader(layer)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		mustDo(b, Reset(context.Background(), root, nil))
		b.StartTimer()
	}
}

func BenchmarkWriteLayer(b *testing.B) {
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		b.Run(strings.TrimPrefix(string(c.mediaType()), "application/"), func(b *testing.B) {
			root := b.TempDir()
			paths := benchTree(b, root, 20, 100, 4096)
			ch := &Changes{Changed: paths}
			dir := b.TempDir()
			b.SetBytes(20 * 100 * 4096)
			b.ReportAllocs()
			for b.Loop() {
				l, err := WriteLayer(context.Background(), root, dir, ch, WithCompression(c))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				mustDo(b, os.Remove(l.Path()))
				b.StartTimer()
			}
		})
	}
}
