package contexts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzFromArchive feeds arbitrary bytes as a build context: extraction may fail, but it
// must never panic, and whatever it writes stays inside the context directory.
func FuzzFromArchive(f *testing.F) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: 11})
	tw.Write([]byte("FROM a\nRUN"))
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "../../etc"})
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	f.Add(plain.Bytes())
	f.Add(gz.Bytes())
	f.Add(plain.Bytes()[:700])
	f.Add([]byte("not a tar at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "ctx")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = FromArchive(context.Background(), bytes.NewReader(data), dir, WithMaxBytes(1<<20), WithMaxEntries(256), WithMaxRatio(100))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			os.WriteFile("/tmp/kiln-fuzz-hang.bin", data, 0o644)
			t.Fatalf("FromArchive hangs on %d bytes", len(data))
		}
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "ctx" && !strings.HasPrefix(e.Name(), ".") {
				t.Fatalf("extraction wrote %s outside the context directory", e.Name())
			}
		}
	})
}
