package store

import (
	"strings"

	"github.com/distribution/reference"
)

// resolveIn finds the image ref names, in dockerd's order: a bare digest is a full ID;
// name@digest is looked up among repo digests; a name is looked up as a tag (":latest"
// added); failing that, ref may be an ID prefix.
func resolveIn(ix *index, ref string) (string, error) {
	parsed, err := reference.ParseAnyReference(ref)
	if err != nil {
		if id, ok := searchID(ix, ref); ok {
			return id, nil
		}
		return "", invalidReferenceError{err}
	}
	switch r := parsed.(type) {
	case reference.Canonical:
		key := r.Name() + "@" + r.Digest().String()
		for id, rec := range ix.Images {
			for _, d := range rec.RepoDigests {
				if d == key {
					return id, nil
				}
			}
		}
		return "", notFoundError{reference.FamiliarString(r)}
	case reference.Named:
		tagged := reference.TagNameOnly(r)
		if id, ok := ix.Tags[tagged.String()]; ok {
			return id, nil
		}
		if id, ok := searchID(ix, ref); ok {
			return id, nil
		}
		return "", notFoundError{reference.FamiliarString(tagged)}
	case reference.Digested:
		if _, ok := ix.Images[r.Digest().String()]; ok {
			return r.Digest().String(), nil
		}
		return "", notFoundError{r.String()}
	}
	return "", notFoundError{ref}
}

// searchID finds the one image whose ID starts with ref (at least 4 hex digits,
// "sha256:" optional). An ambiguous prefix finds nothing, as in dockerd.
func searchID(ix *index, ref string) (string, bool) {
	m := shortID.FindStringSubmatch(ref)
	if m == nil {
		return "", false
	}
	found := ""
	for id := range ix.Images {
		if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), m[1]) {
			if found != "" {
				return "", false
			}
			found = id
		}
	}
	return found, found != ""
}

// isIDPrefix reports whether ref names the image by ID rather than by a reference:
// rmi then removes every reference, where rmi by name removes only that one.
func isIDPrefix(id, ref string) bool {
	return strings.HasPrefix(id, ref) || strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), ref)
}
