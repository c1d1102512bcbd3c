package builder

import (
	"io"
	"strings"
	"testing"
)

// TestProgressReader: a layer read through it reports its bytes, and once, at the
// end, that it is complete.
func TestProgressReader(t *testing.T) {
	t.Parallel()
	var got []Progress
	data := strings.Repeat("x", 10000)
	r := newProgressReader(io.LimitReader(strings.NewReader(data), 1<<20), func(e Event) { got = append(got, e.(Progress)) },
		"Downloading", "0123456789abcdef", int64(len(data)))
	if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	if len(got) == 0 {
		t.Fatal("no progress")
	}
	last := got[len(got)-1]
	if last != (Progress{ID: "0123456789ab", Action: "Downloading", Current: 10000, Total: 10000}) {
		t.Errorf("last progress %+v", last)
	}
	complete := 0
	for _, p := range got {
		if p.Current == p.Total {
			complete++
		}
	}
	if complete != 1 {
		t.Errorf("%d complete events, want 1: %+v", complete, got)
	}
}
