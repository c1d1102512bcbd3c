package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// The range of API versions kiln serves. The docker CLI uses min(its own, the ping's
// Api-Version), so CLI 28 talks /v1.41 to kiln; curl users and newer tools may send up
// to 1.50, CLI 28's own version, and kiln answers them the same way.
const (
	// MinAPIVersion is the oldest API version kiln accepts (dockerd 20.10's minimum).
	MinAPIVersion = "1.12"
	// MaxAPIVersion is the newest API version kiln accepts in a /vX/ prefix.
	MaxAPIVersion = "1.50"
)

// versionPrefix matches a /v1.41/... path as dockerd's router does: any digits and
// dots, followed by the unversioned path.
var versionPrefix = regexp.MustCompile(`^/v([0-9.]+)(/.*)$`)

// splitVersion splits a request path into its API version ("" when unversioned) and
// the path the routes are registered under.
func splitVersion(path string) (version, rest string) {
	m := versionPrefix.FindStringSubmatch(path)
	if m == nil {
		return "", path
	}
	return m[1], m[2]
}

type versionKey struct{}

// apiVersion returns the API version the client asked for in the path, or
// APIVersion for an unversioned path (served at the default version, as dockerd
// does). Handlers gate version-dependent behaviour on it, e.g. the build stream's aux
// image ID, which dockerd sends only from 1.30 on.
func apiVersion(ctx context.Context) string {
	if v, ok := ctx.Value(versionKey{}).(string); ok {
		return v
	}
	return APIVersion
}

// versionAtLeast reports whether the request's API version is v or newer.
func versionAtLeast(ctx context.Context, v string) bool {
	return compareVersions(apiVersion(ctx), v) >= 0
}

// withAPIVersion strips a /vX.Y prefix so the routes match unversioned paths, checks
// X.Y against the range kiln serves and records it for apiVersion.
func withAPIVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version, rest := splitVersion(r.URL.Path)
		if version == "" {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), versionKey{}, APIVersion)))
			return
		}
		if compareVersions(version, MaxAPIVersion) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", version, MaxAPIVersion))
			return
		}
		if compareVersions(version, MinAPIVersion) < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinAPIVersion))
			return
		}
		// Handlers must not modify the request they are given: route a copy, with a
		// URL of its own.
		r2 := r.WithContext(context.WithValue(r.Context(), versionKey{}, version))
		u := *r.URL
		u.Path = rest
		if u.RawPath != "" {
			// The prefix is digits and dots, the same escaped or not.
			u.RawPath = strings.TrimPrefix(u.RawPath, "/v"+version)
		}
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// compareVersions compares dotted versions numerically ("1.9" < "1.12"), a missing
// part counting as 0, and returns -1, 0 or 1.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}
