package builder

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParsePlatform(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{in: "linux/amd64", want: "linux/amd64"},
		{in: "Linux/AMD64", want: "linux/amd64"},
		{in: "linux/x86_64", want: "linux/amd64"},
		{in: "linux/amd64/v1", want: "linux/amd64"},
		{in: "linux/amd64/v3", want: "linux/amd64/v3"},
		{in: "linux/aarch64", want: "linux/arm64"},
		{in: "linux/arm64/v8", want: "linux/arm64"},
		{in: "linux/arm64/v8.2", want: "linux/arm64/v8.2"},
		{in: "linux/arm", want: "linux/arm/v7"},
		{in: "linux/armhf", want: "linux/arm/v7"},
		{in: "linux/armel", want: "linux/arm/v6"},
		{in: "linux/arm/6", want: "linux/arm/v6"},
		{in: "linux/i386", want: "linux/386"},
		{in: "arm64", wantErr: "want os/arch"},
		{in: "linux/amd64/v2/x/y", wantErr: "invalid platform"},
	} {
		p, err := parsePlatform(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parsePlatform(%q) = %v, %v; want an error containing %q", tc.in, p, err, tc.wantErr)
			}
			continue
		}
		if err != nil || formatPlatform(p) != tc.want {
			t.Errorf("parsePlatform(%q) = %s, %v; want %s", tc.in, formatPlatform(p), err, tc.want)
		}
	}
}

func TestPickChild(t *testing.T) {
	t.Parallel()
	child := func(s string) v1.Descriptor {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: s}, Platform: p}
	}
	noPlatform := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: "none"}}
	for _, tc := range []struct {
		name     string
		children []v1.Descriptor
		want     string
		pick     string // Hex of the child picked, "" for none
	}{
		{name: "exact", children: []v1.Descriptor{child("linux/amd64"), child("linux/arm64")}, want: "linux/arm64", pick: "linux/arm64"},
		{name: "arm64 matches arm64/v8", children: []v1.Descriptor{child("linux/amd64"), child("linux/arm64/v8")}, want: "linux/arm64", pick: "linux/arm64/v8"},
		{name: "arm64/v8 matches arm64", children: []v1.Descriptor{child("linux/arm64")}, want: "linux/arm64/v8", pick: "linux/arm64"},
		{name: "exact variant before an older one", children: []v1.Descriptor{child("linux/arm/v6"), child("linux/arm/v7")}, want: "linux/arm/v7", pick: "linux/arm/v7"},
		{name: "older variant when the exact one is missing", children: []v1.Descriptor{child("linux/arm/v5"), child("linux/arm/v6")}, want: "linux/arm/v7", pick: "linux/arm/v6"},
		{name: "newer variant never", children: []v1.Descriptor{child("linux/arm/v7")}, want: "linux/arm/v6"},
		{name: "amd64/v3 takes amd64", children: []v1.Descriptor{child("linux/amd64")}, want: "linux/amd64/v3", pick: "linux/amd64"},
		{name: "amd64 never takes 386", children: []v1.Descriptor{child("linux/386")}, want: "linux/amd64"},
		{name: "arm64 never takes arm", children: []v1.Descriptor{child("linux/arm/v7")}, want: "linux/arm64"},
		{name: "an entry without platform is linux/amd64", children: []v1.Descriptor{noPlatform}, want: "linux/amd64", pick: "none"},
		{name: "other OS", children: []v1.Descriptor{child("windows/amd64")}, want: "linux/amd64"},
	} {
		want, err := parsePlatform(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := pickChild(tc.children, want)
		if tc.pick == "" {
			if ok {
				t.Errorf("%s: picked %s, want none", tc.name, got.Digest.Hex)
			}
			continue
		}
		if !ok || got.Digest.Hex != tc.pick {
			t.Errorf("%s: picked %s (%v), want %s", tc.name, got.Digest.Hex, ok, tc.pick)
		}
	}
}

func TestCheckConfigPlatform(t *testing.T) {
	t.Parallel()
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	for _, tc := range []struct {
		name     string
		config   v1.ConfigFile
		want     platformWant
		wantWarn string
		wantErr  string
	}{
		{name: "match", config: v1.ConfigFile{OS: "linux", Architecture: "amd64"}, want: platformWant{amd64, true, false}},
		{name: "variant spelled out", config: v1.ConfigFile{OS: "linux", Architecture: "arm64", Variant: "v8"}, want: platformWant{arm64, true, false}},
		{name: "asked for, not provided", config: v1.ConfigFile{OS: "linux", Architecture: "amd64"}, want: platformWant{arm64, true, false},
			wantErr: "no match for platform in manifest: ref is an image for linux/amd64, not linux/arm64"},
		{name: "default, not provided", config: v1.ConfigFile{OS: "linux", Architecture: "arm64"}, want: platformWant{amd64, false, false},
			wantWarn: "The image ref is for linux/arm64 and this machine is linux/amd64; no platform was requested, so it is used as it is"},
		{name: "COPY --from, not provided", config: v1.ConfigFile{OS: "linux", Architecture: "amd64"}, want: platformWant{arm64, true, true},
			wantWarn: "The image ref is for linux/amd64, not linux/arm64: COPY --from copies its files as they are"},
		{name: "no platform in the config", config: v1.ConfigFile{}, want: platformWant{arm64, true, false},
			wantWarn: "The image ref does not say which platform it is for (its config has no os or architecture): it is taken to be linux/arm64"},
	} {
		warn, err := checkConfigPlatform("ref", &tc.config, tc.want)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if warn != tc.wantWarn || gotErr != tc.wantErr {
			t.Errorf("%s: warning %q, error %q; want %q, %q", tc.name, warn, gotErr, tc.wantWarn, tc.wantErr)
		}
	}
}

func TestExecFormatNote(t *testing.T) {
	t.Parallel()
	host := v1.Platform{OS: "linux", Architecture: "amd64"}
	for _, tc := range []struct {
		image *v1.Platform
		want  string
	}{
		{image: &v1.Platform{OS: "linux", Architecture: "arm64"}, want: "the image is linux/arm64 and this machine runs linux/amd64 without an emulator registered in binfmt_misc"},
		{image: &v1.Platform{OS: "linux", Architecture: "amd64"}, want: "although the image says it is for linux/amd64"},
		{image: nil, want: "the program is not one this machine (linux/amd64) can run"},
	} {
		if got := execFormatNote(tc.image, host); !strings.Contains(got, tc.want) {
			t.Errorf("execFormatNote(%v) = %q, want it to contain %q", tc.image, got, tc.want)
		}
	}
}
