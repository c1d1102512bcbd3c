package store

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

// Names follow Docker's reference grammar (github.com/distribution/reference), not
// go-containerregistry's: Docker spells the default registry "docker.io" where
// go-containerregistry says "index.docker.io", and every name the CLI prints or sends
// is Docker's. Inside the store, names are kept fully qualified
// ("docker.io/library/busybox:latest"); what leaves it is familiar ("busybox:latest").

// ErrInvalidReference is matched (errors.Is) by every error about a malformed image
// reference; the message is the reference parser's, e.g. "invalid reference format:
// repository name (library/Busybox) must be lowercase", as dockerd words it.
var ErrInvalidReference = errors.New("invalid reference format")

// invalidReferenceError carries the parser's message and matches ErrInvalidReference.
type invalidReferenceError struct{ err error }

func (e invalidReferenceError) Error() string        { return e.err.Error() }
func (e invalidReferenceError) Unwrap() error        { return e.err }
func (e invalidReferenceError) Is(target error) bool { return target == ErrInvalidReference }

// shortID matches what may be an abbreviated image ID, with or without "sha256:".
// Docker accepts any unique prefix; four characters keeps "add", "bee" and friends
// from being read as IDs when they were meant as names.
var shortID = regexp.MustCompile(`^(?:sha256:)?([0-9a-f]{4,64})$`)

// ParseTag parses a tag as docker does: "busybox" is docker.io/library/busybox:latest,
// "u/app" is docker.io/u/app:latest, "127.0.0.1:5000/app:1" keeps its registry.
// Uppercase repositories and references with a digest are refused.
func ParseTag(s string) (name.Tag, error) {
	tagged, err := parseTagged(s)
	if err != nil {
		return name.Tag{}, err
	}
	t, err := name.NewTag(tagged.String(), name.StrictValidation)
	if err != nil {
		return name.Tag{}, invalidReferenceError{fmt.Errorf("invalid reference format: %s: %w", s, err)}
	}
	return t, nil
}

// parseTagged parses s as a tag in Docker's grammar, adding ":latest" when s has none.
func parseTagged(s string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, invalidReferenceError{err}
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, invalidReferenceError{errors.New("refusing to create a tag with a digest reference")}
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return nil, invalidReferenceError{fmt.Errorf("invalid reference format: %s", s)}
	}
	return tagged, nil
}

// Familiar returns the short form docker prints for ref: docker.io/library/busybox:latest
// becomes "busybox:latest", docker.io/u/app:1 becomes "u/app:1", and names on any other
// registry keep their host ("127.0.0.1:5000/app:1"). Digest references print as
// "app@sha256:…".
func Familiar(ref name.Reference) string {
	full := dockerString(ref)
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return full // go-containerregistry accepted it; show it as it is
	}
	return reference.FamiliarString(named)
}

// FamiliarName returns the familiar form of a reference given in any spelling Docker
// accepts ("docker.io/library/busybox" → "busybox"). A missing tag is not added.
func FamiliarName(s string) (string, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", invalidReferenceError{err}
	}
	return reference.FamiliarString(named), nil
}

// NormalizedName returns the repository of s fully qualified the way dockerd prints it
// in push output ("busybox" → "docker.io/library/busybox"), dropping any tag or digest.
func NormalizedName(s string) (string, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", invalidReferenceError{err}
	}
	return named.Name(), nil
}

// dockerString spells a go-containerregistry reference as Docker's normalized string:
// "index.docker.io" becomes "docker.io".
func dockerString(ref name.Reference) string {
	repo := ref.Context()
	registry := repo.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	full := registry + "/" + repo.RepositoryStr()
	switch r := ref.(type) {
	case name.Tag:
		return full + ":" + r.TagStr()
	case name.Digest:
		return full + "@" + r.DigestStr()
	}
	return full
}

// tagKey is the index key of a go-containerregistry tag: Docker's normalized string.
func tagKey(t name.Tag) (string, error) {
	tagged, err := parseTagged(dockerString(t))
	if err != nil {
		return "", err
	}
	return tagged.String(), nil
}

// familiarKey turns an index key (tag or repo@digest) into what docker prints.
func familiarKey(key string) string {
	named, err := reference.ParseNormalizedNamed(key)
	if err != nil {
		return key
	}
	return reference.FamiliarString(named)
}

// repoOfKey returns the repository name of an index key (tag or repo@digest).
func repoOfKey(key string) string {
	if i := strings.LastIndex(key, "@"); i >= 0 {
		return key[:i]
	}
	named, err := reference.ParseNormalizedNamed(key)
	if err != nil {
		return key
	}
	return named.Name()
}

// MatchReference reports whether pattern, a shell pattern as in `docker images
// 'app*'`, matches the familiar form of key or its familiar repository name, which is
// how dockerd's reference filter works. key is a familiar or normalized reference.
func MatchReference(pattern, key string) (bool, error) {
	named, err := reference.ParseNormalizedNamed(key)
	if err != nil {
		return false, invalidReferenceError{err}
	}
	ok, err := reference.FamiliarMatch(pattern, named)
	if err != nil {
		return false, fmt.Errorf("invalid reference pattern %q: %w", pattern, err)
	}
	return ok, nil
}
