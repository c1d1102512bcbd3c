package snapshot

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks of the snapshot walk, the layer writer and extraction. They are not
// timed tests: run them with
//
//	go test -run '^$' -bench . -benchmem ./snapshot/
//
// DiffUnchanged/100k is the case h (an unchanged 100,000-file root), and
// WriteLayer/*/100MB and Extract/100MB the COPY of 10,000 files and 100 MB.

// benchFixtures builds each benchmark tree once per test binary, in a directory that
// TestMain removes: the 100,000-file tree takes longer to create than the benchmarks
// that share it take to run.
var benchFixtures = &fixtureCache{trees: map[string]string{}}

type fixtureCache struct {
	mu    sync.Mutex
	dir   string
	trees map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	benchFixtures.remove()
	os.Exit(code)
}

// tree returns the root of the fixture called name, calling build to fill it the
// first time.
func (c *fixtureCache) tree(b *testing.B, name string, build func(root string)) string {
	b.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if root, ok := c.trees[name]; ok {
		return root
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "kiln-snapshot-bench-")
		mustDo(b, err)
		c.dir = dir
	}
	root := filepath.Join(c.dir, name)
	mustDo(b, os.Mkdir(root, 0o755))
	build(root)
	c.trees[name] = root
	return root
}

func (c *fixtureCache) remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// benchTree writes dirs*perDir files of size bytes below root. Their content is
// random hex digits, which compress about as well as typical binaries (2:1), so
// the compressors do real work.
func benchTree(b *testing.B, root string, dirs, perDir, size int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, size/2+1)
	body := make([]byte, len(raw)*2)
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("usr/share/d%04d", d))
		mustDo(b, os.MkdirAll(dir, 0o755))
		for f := range perDir {
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			hex.Encode(body, raw)
			mustDo(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%04d.txt", f)), body[:size], 0o644))
		}
	}
}

// treeSize is one benchmark tree shape.
type treeSize struct {
	name              string
	dirs, perDir, len int
}

var (
	// walkTrees are the trees the walk benchmarks scan: empty files, since a walk
	// only stats them. 100k is case h.
	walkTrees = []treeSize{
		{"20k", 200, 100, 0},
		{"100k", 1000, 100, 0},
	}
	// layerTree is the COPY of 10,000 files, 100 MB (10,000 x 10 KiB).
	layerTree = treeSize{"100MB", 100, 100, 10 << 10}
)

// fixture returns the cached tree of shape s and its image paths.
func (s treeSize) fixture(b *testing.B) (root string, paths []string) {
	b.Helper()
	root = benchFixtures.tree(b, s.name, func(root string) { benchTree(b, root, s.dirs, s.perDir, s.len) })
	// The paths are cheap to recompute and not worth caching.
	for d := range s.dirs {
		dir := fmt.Sprintf("/usr/share/d%04d", d)
		paths = append(paths, dir)
		for f := range s.perDir {
			paths = append(paths, fmt.Sprintf("%s/file-%04d.txt", dir, f))
		}
	}
	return root, append(paths, "/usr", "/usr/share")
}

// cpuTime returns the CPU time (user and system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru unix.Rusage
	mustDo(b, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start, all cores together: on
// a busy machine it varies much less than the wall time.
func reportCPU(b *testing.B, start time.Duration) {
	b.Helper()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e6, "cpu-ms/op")
}

func BenchmarkScan(b *testing.B) {
	for _, s := range walkTrees {
		b.Run(s.name, func(b *testing.B) {
			root, _ := s.fixture(b)
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if _, err := Scan(context.Background(), root); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkDiffUnchanged is the snapshot after a RUN that changed nothing.
func BenchmarkDiffUnchanged(b *testing.B) {
	for _, s := range walkTrees {
		b.Run(s.name, func(b *testing.B) {
			root, _ := s.fixture(b)
			ix, err := Scan(context.Background(), root)
			mustDo(b, err)
			b.ReportAllocs()
			start := cpuTime(b)
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
			reportCPU(b, start)
		})
	}
}

// BenchmarkUpdate is the index update after a COPY: one directory of 100 files
// re-recorded in a large index, and the whole root.
func BenchmarkUpdate(b *testing.B) {
	s := walkTrees[len(walkTrees)-1]
	for _, tc := range []struct {
		name  string
		paths []string
	}{
		{"dir", []string{"/usr/share/d0500"}},
		{"root", []string{"/"}},
	} {
		b.Run(s.name+"/"+tc.name, func(b *testing.B) {
			root, _ := s.fixture(b)
			ix, err := Scan(context.Background(), root)
			mustDo(b, err)
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if err := ix.Update(root, tc.paths); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

func BenchmarkWriteLayer(b *testing.B) {
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		b.Run(c.String()+"/"+layerTree.name, func(b *testing.B) {
			root, paths := layerTree.fixture(b)
			benchWriteLayer(b, root, paths, WithCompression(c))
		})
	}
}

// benchWriteLayer times writing the layer of the 100 MB tree's paths over root.
func benchWriteLayer(b *testing.B, root string, paths []string, opts ...LayerOption) {
	ch := &Changes{Changed: paths}
	dir := b.TempDir()
	b.SetBytes(int64(layerTree.dirs * layerTree.perDir * layerTree.len))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		l, err := WriteLayer(context.Background(), root, dir, ch, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		mustDo(b, os.Remove(l.Path()))
		b.StartTimer()
	}
	reportCPU(b, start)
}

// BenchmarkWriteLayerPlanned writes the 100 MB tree's layer as COPY's fast path does:
// the root holds only the directories, every file is planned from its source.
func BenchmarkWriteLayerPlanned(b *testing.B) {
	src, paths := layerTree.fixture(b)
	root := b.TempDir()
	plan := NewPlan()
	for _, p := range paths {
		fi, err := os.Lstat(src + p)
		mustDo(b, err)
		if fi.IsDir() {
			mustDo(b, os.MkdirAll(root+p, 0o755))
			continue
		}
		plan.Add(p, &PlannedFile{Source: src + p, Mode: 0o644})
	}
	benchWriteLayer(b, root, paths, WithCompression(Uncompressed), WithPlan(plan))
}

// BenchmarkExtract applies the 100 MB layer, decompressing it as a base layer is.
func BenchmarkExtract(b *testing.B) {
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		b.Run(c.String()+"/"+layerTree.name, func(b *testing.B) {
			src, paths := layerTree.fixture(b)
			l, err := WriteLayer(context.Background(), src, b.TempDir(), &Changes{Changed: paths}, WithCompression(c))
			mustDo(b, err)
			root := b.TempDir()
			b.SetBytes(int64(layerTree.dirs * layerTree.perDir * layerTree.len))
			b.ReportAllocs()
			for b.Loop() {
				rc, err := l.Uncompressed()
				mustDo(b, err)
				if err := Extract(context.Background(), root, "/", rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
				b.StopTimer()
				mustDo(b, Reset(context.Background(), root, nil))
				b.StartTimer()
			}
		})
	}
}
