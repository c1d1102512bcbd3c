package snapshot

import (
	"context"
	"strings"
	"testing"
)

func TestParseCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Compression
		wantErr bool
	}{
		{"", Gzip, false},
		{"gzip", Gzip, false},
		{"zstd", Zstd, false},
		{"none", Uncompressed, false},
		{"GZIP", 0, true},
		{"xz", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseCompression(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && tt.in != "" && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestCheckLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c       Compression
		level   int
		wantErr string
	}{
		{Gzip, 0, ""},
		{Gzip, 1, ""},
		{Gzip, 9, ""},
		{Gzip, 10, "gzip takes 1-9"},
		{Gzip, -1, "gzip takes 1-9"},
		{Zstd, 22, ""},
		{Zstd, 23, "zstd takes 1-22"},
		{Uncompressed, 0, ""},
		{Uncompressed, 3, "take no level"},
	}
	for _, tt := range tests {
		err := tt.c.CheckLevel(tt.level)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%v.CheckLevel(%d) = %v, want error containing %q", tt.c, tt.level, err, tt.wantErr)
		}
	}
}

// TestWriteLayerBadLevel checks that WriteLayer refuses a level rather than let a
// compressor clamp it or fail later.
func TestWriteLayerBadLevel(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"/a": "a"})
	_, err := WriteLayer(context.Background(), root, t.TempDir(), &Changes{Changed: []string{"/a"}}, WithLevel(12))
	if err == nil || !strings.Contains(err.Error(), "gzip takes 1-9") {
		t.Errorf("WriteLayer with gzip level 12: error %v, want a range error", err)
	}
}
