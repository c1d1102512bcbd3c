package builder

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Choosing the image of a base for the platform a build asks for follows containerd's
// platforms package, which BuildKit and dockerd use: both sides are normalised first
// ("aarch64" is arm64, "arm64/v8" is arm64, "arm" is arm/v7, "amd64/v1" is amd64), and an
// index entry for an older variant of the same architecture serves a request for a newer
// one when the exact variant is missing (arm/v7 takes arm/v6, then arm/v5). Unlike
// containerd's Only, kiln never crosses architectures (amd64 does not take 386, arm64
// not arm/v8): the image's config would then name another architecture than the one
// asked for.

// platformWant is the platform a pull asks for. explicit says the user named it
// (--custom-platform, docker build --platform, FROM --platform): a single-platform image
// for another platform is then an error; otherwise it is the host's by default, and such
// an image is used with a warning, as Docker does. filesOnly marks the image of COPY
// --from=<image>, whose files are copied whatever platform it is for (BuildKit copies
// them too): a mismatch is only a warning there.
type platformWant struct {
	v1.Platform
	explicit  bool
	filesOnly bool
}

// forFiles is w for COPY --from=<image>.
func (w platformWant) forFiles() platformWant {
	w.filesOnly = true
	return w
}

// key identifies the want in the puller's memo.
func (w platformWant) key() string {
	return formatPlatform(w.Platform) + "|" + strconv.FormatBool(w.explicit) + "|" + strconv.FormatBool(w.filesOnly)
}

// hostPlatform is the platform images are built for unless the request says otherwise.
func hostPlatform() v1.Platform {
	return normalizePlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
}

// parsePlatform parses "os/arch[/variant]", normalised; empty means the host platform.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return hostPlatform(), nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	if p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant], e.g. linux/arm64", s)
	}
	return normalizePlatform(*p), nil
}

// normalizePlatform spells p as containerd's platforms.Normalize does.
func normalizePlatform(p v1.Platform) v1.Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	arch, variant := strings.ToLower(p.Architecture), strings.ToLower(p.Variant)
	switch arch {
	case "i386":
		arch, variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		arch = "amd64"
		if variant == "v1" {
			variant = ""
		}
	case "aarch64", "arm64":
		arch = "arm64"
		switch variant {
		case "8", "v8", "v8.0":
			variant = ""
		}
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
	}
	p.Architecture, p.Variant = arch, variant
	return p
}

// compatiblePlatforms lists the platforms whose images serve a request for want, best
// first: want itself, then older variants of its architecture.
func compatiblePlatforms(want v1.Platform) []v1.Platform {
	want = normalizePlatform(want)
	out := []v1.Platform{want}
	older := func(variant string) {
		p := want
		p.Variant = variant
		out = append(out, p)
	}
	switch want.Architecture {
	case "arm":
		if n, err := strconv.Atoi(strings.TrimPrefix(want.Variant, "v")); err == nil {
			for n--; n >= 5; n-- {
				older("v" + strconv.Itoa(n))
			}
		}
	case "amd64":
		if n, err := strconv.Atoi(strings.TrimPrefix(want.Variant, "v")); err == nil {
			for n--; n >= 2; n-- {
				older("v" + strconv.Itoa(n))
			}
			older("")
		}
	case "arm64":
		if minor, ok := strings.CutPrefix(want.Variant, "v8."); ok {
			if n, err := strconv.Atoi(minor); err == nil {
				for n--; n >= 1; n-- {
					older("v8." + strconv.Itoa(n))
				}
				older("")
			}
		}
	}
	return out
}

// platformRank is the position of have among the platforms serving want (0 best), or
// -1 when it serves none. Only OS, architecture and variant count.
func platformRank(want, have v1.Platform) int {
	have = normalizePlatform(have)
	for i, p := range compatiblePlatforms(want) {
		if p.OS == have.OS && p.Architecture == have.Architecture && p.Variant == have.Variant {
			return i
		}
	}
	return -1
}

// formatPlatform writes os/arch[/variant].
func formatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// childPlatform is the platform of an index entry; an entry without one is
// linux/amd64, as go-containerregistry and Docker take it.
func childPlatform(d v1.Descriptor) v1.Platform {
	if d.Platform == nil {
		return v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	return *d.Platform
}

// pickChild returns the index entry that serves want best.
func pickChild(children []v1.Descriptor, want v1.Platform) (v1.Descriptor, bool) {
	best, bestRank := v1.Descriptor{}, -1
	for _, ch := range children {
		r := platformRank(want, childPlatform(ch))
		if r >= 0 && (bestRank < 0 || r < bestRank) {
			best, bestRank = ch, r
		}
	}
	return best, bestRank >= 0
}

// PlatformError is a base image that does not provide the platform the build asks for.
// BuildKit says "no match for platform in manifest"; this names the image, the platform
// asked for and the ones the image has.
type PlatformError struct {
	// Image is the reference as the Dockerfile names it (after ARG expansion).
	Image string
	// Want is the platform asked for.
	Want v1.Platform
	// Available are the platforms the image provides: its index's entries (attestation
	// manifests left out), or the one its config names.
	Available []v1.Platform
	// Index says whether the image is an index (multi-platform) or an image, whose
	// config names its platform.
	Index bool
}

func (e *PlatformError) Error() string {
	have := make([]string, 0, len(e.Available))
	for _, p := range e.Available {
		have = append(have, formatPlatform(p))
	}
	if !e.Index {
		return fmt.Sprintf("no match for platform in manifest: %s is an image for %s, not %s",
			e.Image, strings.Join(have, ", "), formatPlatform(e.Want))
	}
	if len(have) == 0 {
		return fmt.Sprintf("no match for platform in manifest: %s has no image for %s; its index lists no platform",
			e.Image, formatPlatform(e.Want))
	}
	return fmt.Sprintf("no match for platform in manifest: %s has no image for %s; its index provides %s",
		e.Image, formatPlatform(e.Want), strings.Join(have, ", "))
}

// indexPlatformError describes an index without an entry for want.
func indexPlatformError(ref string, want v1.Platform, children []v1.Descriptor) *PlatformError {
	e := &PlatformError{Image: ref, Want: want, Index: true}
	for _, ch := range children {
		p := childPlatform(ch)
		if p.OS == "unknown" && p.Architecture == "unknown" {
			continue // BuildKit's attestation manifests
		}
		e.Available = append(e.Available, p)
	}
	return e
}

// checkConfigPlatform decides whether a single-platform image, whose config is cf,
// serves want. It returns the warning to show, if any, or a *PlatformError. A config
// naming no OS or architecture is taken to be want's, with a warning, as Docker takes
// such images for its own platform; the caller then fills cf in.
func checkConfigPlatform(ref string, cf *v1.ConfigFile, want platformWant) (warning string, err error) {
	have := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if have.OS == "" || have.Architecture == "" {
		return fmt.Sprintf("The image %s does not say which platform it is for (its config has no os or architecture): it is taken to be %s",
			ref, formatPlatform(want.Platform)), nil
	}
	if platformRank(want.Platform, have) >= 0 {
		return "", nil
	}
	switch {
	case want.filesOnly:
		return fmt.Sprintf("The image %s is for %s, not %s: COPY --from copies its files as they are",
			ref, formatPlatform(have), formatPlatform(want.Platform)), nil
	case want.explicit:
		return "", &PlatformError{Image: ref, Want: want.Platform, Available: []v1.Platform{have}}
	}
	return fmt.Sprintf("The image %s is for %s and this machine is %s; no platform was requested, so it is used as it is",
		ref, formatPlatform(have), formatPlatform(want.Platform)), nil
}
