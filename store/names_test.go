package store

import (
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseTag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		key      string // Docker's normalized form
		familiar string
		wantErr  bool
	}{
		{in: "busybox", key: "docker.io/library/busybox:latest", familiar: "busybox:latest"},
		{in: "busybox:1.35", key: "docker.io/library/busybox:1.35", familiar: "busybox:1.35"},
		{in: "library/busybox", key: "docker.io/library/busybox:latest", familiar: "busybox:latest"},
		{in: "docker.io/library/busybox:latest", key: "docker.io/library/busybox:latest", familiar: "busybox:latest"},
		{in: "index.docker.io/library/busybox", key: "docker.io/library/busybox:latest", familiar: "busybox:latest"},
		{in: "u/app", key: "docker.io/u/app:latest", familiar: "u/app:latest"},
		{in: "docker.io/u/app:2", key: "docker.io/u/app:2", familiar: "u/app:2"},
		{in: "127.0.0.1:5000/apicap/x:1", key: "127.0.0.1:5000/apicap/x:1", familiar: "127.0.0.1:5000/apicap/x:1"},
		{in: "localhost/app", key: "localhost/app:latest", familiar: "localhost/app:latest"},
		{in: "ghcr.io/o/app:v1.0", key: "ghcr.io/o/app:v1.0", familiar: "ghcr.io/o/app:v1.0"},
		{in: "Busybox", wantErr: true},
		{in: "busybox@sha256:" + hex64('a'), wantErr: true},
		{in: "", wantErr: true},
		{in: "bad name", wantErr: true},
		{in: "app:", wantErr: true},
		{in: "-app", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			tag, err := ParseTag(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseTag(%q) = %v, want an error", tt.in, tag)
				}
				if !errors.Is(err, ErrInvalidReference) {
					t.Errorf("ParseTag(%q) error %v does not match ErrInvalidReference", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTag(%q): %v", tt.in, err)
			}
			key, err := tagKey(tag)
			if err != nil {
				t.Fatalf("tagKey(%v): %v", tag, err)
			}
			if key != tt.key {
				t.Errorf("key of %q = %q, want %q", tt.in, key, tt.key)
			}
			if got := Familiar(tag); got != tt.familiar {
				t.Errorf("Familiar(%q) = %q, want %q", tt.in, got, tt.familiar)
			}
		})
	}
}

func TestFamiliar(t *testing.T) {
	t.Parallel()
	const d = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tests := []struct {
		ref  name.Reference
		want string
	}{
		{name.MustParseReference("busybox"), "busybox:latest"},
		{name.MustParseReference("index.docker.io/library/busybox:1"), "busybox:1"},
		{name.MustParseReference("u/app:2"), "u/app:2"},
		{name.MustParseReference("127.0.0.1:5000/app:1"), "127.0.0.1:5000/app:1"},
		{name.MustParseReference("127.0.0.1:5000/app@" + d), "127.0.0.1:5000/app@" + d},
		{name.MustParseReference("busybox@" + d), "busybox@" + d},
	}
	for _, tt := range tests {
		if got := Familiar(tt.ref); got != tt.want {
			t.Errorf("Familiar(%s) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestFamiliarAndNormalizedName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, familiar, normalized string
	}{
		{"busybox", "busybox", "docker.io/library/busybox"},
		{"docker.io/library/busybox:1", "busybox:1", "docker.io/library/busybox"},
		{"docker.io/u/x", "u/x", "docker.io/u/x"},
		{"127.0.0.1:5010/apicap/x:1", "127.0.0.1:5010/apicap/x:1", "127.0.0.1:5010/apicap/x"},
	}
	for _, tt := range tests {
		f, err := FamiliarName(tt.in)
		if err != nil || f != tt.familiar {
			t.Errorf("FamiliarName(%q) = %q, %v; want %q", tt.in, f, err, tt.familiar)
		}
		n, err := NormalizedName(tt.in)
		if err != nil || n != tt.normalized {
			t.Errorf("NormalizedName(%q) = %q, %v; want %q", tt.in, n, err, tt.normalized)
		}
	}
	if _, err := FamiliarName("UPPER"); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("FamiliarName(UPPER) error = %v, want ErrInvalidReference", err)
	}
	if _, err := NormalizedName("a b"); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("NormalizedName(a b) error = %v, want ErrInvalidReference", err)
	}
}

func TestMatchReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, ref string
		want         bool
	}{
		{"apicap*", "docker.io/library/apicap-basic:latest", true},
		{"apicap*", "127.0.0.1:5010/apicap/x:1", false},
		{"apicap-basic", "docker.io/library/apicap-basic:v2", true},    // the name alone matches
		{"apicap-basic:v2", "docker.io/library/apicap-basic:v2", true}, // name:tag matches
		{"apicap-basic:v3", "docker.io/library/apicap-basic:v2", false},
		{"*/apicap/*", "127.0.0.1:5010/apicap/x:1", true},
		{"busybox", "busybox:latest", true},
		{"u/*", "docker.io/u/app:1", true},
		{"docker.io/library/busybox", "busybox:latest", false}, // patterns are matched against familiar forms
	}
	for _, tt := range tests {
		got, err := MatchReference(tt.pattern, tt.ref)
		if err != nil {
			t.Errorf("MatchReference(%q, %q): %v", tt.pattern, tt.ref, err)
			continue
		}
		if got != tt.want {
			t.Errorf("MatchReference(%q, %q) = %v, want %v", tt.pattern, tt.ref, got, tt.want)
		}
	}
	if _, err := MatchReference("[", "busybox"); err == nil {
		t.Error("MatchReference with a malformed pattern: no error")
	}
}

// hex64 is 64 copies of c: a well-formed digest hex.
func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
