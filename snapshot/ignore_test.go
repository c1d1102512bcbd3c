package snapshot

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIgnoreMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		paths []string
		p     string
		want  bool
	}{
		{"nil set", nil, "/proc", false},
		{"exact", []string{"/proc"}, "/proc", true},
		{"below", []string{"/proc"}, "/proc/self/fd", true},
		{"sibling prefix is not below", []string{"/proc"}, "/procfs", false},
		{"parent is not ignored", []string{"/var/run"}, "/var", false},
		{"relative and unclean input", []string{"var//run/"}, "var/run/x/../y", true},
		{"root ignores everything", []string{"/"}, "/etc", true},
		{"entry sorting between p and its ancestor", []string{"/a", "/a-b"}, "/a/x", true},
		{"entry sorting between, many", []string{"/a", "/a-b", "/a.c", "/a0"}, "/a/x/y", true},
		{"no match among neighbours", []string{"/a-b", "/a.c", "/ab"}, "/a/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ig *Ignore
			if tt.paths != nil {
				ig = NewIgnore(tt.paths...)
			}
			if got := ig.Match(tt.p); got != tt.want {
				t.Errorf("Match(%q) with %q = %v, want %v", tt.p, tt.paths, got, tt.want)
			}
		})
	}
}

func TestIgnoreWith(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		base []string
		add  []string
		want []string
	}{
		{"empty", nil, nil, nil},
		{"cleans and sorts", nil, []string{"var/run/", "/proc", ""}, []string{"/proc", "/var/run"}},
		{"drops entries below others", []string{"/var/run/x"}, []string{"/var"}, []string{"/var"}},
		{"keeps base", []string{"/a"}, []string{"/b"}, []string{"/a", "/b"}},
		{"dedupes", []string{"/a"}, []string{"/a"}, []string{"/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := NewIgnore(tt.base...)
			before := append([]string(nil), base.Paths()...)
			got := base.With(tt.add...).Paths()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("With (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, base.Paths()); diff != "" {
				t.Errorf("With changed its receiver (-before +after):\n%s", diff)
			}
		})
	}
}

func TestIgnoreWithin(t *testing.T) {
	t.Parallel()
	ig := NewIgnore("/proc", "/var/run")
	tests := []struct {
		dir  string
		want bool
	}{{"/", true}, {"/var", true}, {"/var/run", false}, {"/va", false}, {"/usr", false}, {"/proc", false}}
	for _, tt := range tests {
		if got := ig.within(tt.dir); got != tt.want {
			t.Errorf("within(%q) = %v, want %v", tt.dir, got, tt.want)
		}
	}
	if NewIgnore("/").within("/") {
		t.Error(`within("/") with only "/" ignored = true, want false`)
	}
}
