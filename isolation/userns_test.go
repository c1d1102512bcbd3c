package isolation

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSubRange(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "subuid")
	data := "# comment\nalice:100000:65536\nbad:x:1\n1234:200000:1000\nzero:300000:0\nalice:400000:10\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		uid    int
		want   idRange
		wantOK bool
	}{
		{"alice", 1000, idRange{100000, 65536}, true}, // the first line wins
		{"bob", 1234, idRange{200000, 1000}, true},    // by uid
		{"bad", 1, idRange{}, false},
		{"zero", 2, idRange{}, false},
		{"carol", 5, idRange{}, false},
	}
	for _, tt := range tests {
		got, ok := subRange(file, tt.name, tt.uid)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("subRange(%s, %d) = %v, %v; want %v, %v", tt.name, tt.uid, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestCheckOwner(t *testing.T) {
	tests := []struct {
		env     string
		uid     int
		wantErr bool
	}{
		{"", 1000, false},
		{MappingRange, 1000, false},
		{MappingSingle, 0, false},
		{MappingSingle, 1000, true},
		{"wait:" + MappingSingle, 1000, false}, // not yet the namespace's kiln
	}
	for _, tt := range tests {
		t.Setenv(rootlessEnv, tt.env)
		if err := CheckOwner(tt.uid, tt.uid); (err != nil) != tt.wantErr {
			t.Errorf("%q: CheckOwner(%d) = %v", tt.env, tt.uid, err)
		}
	}
}
