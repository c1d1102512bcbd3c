package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/store"
)

// buildOptions is what a POST /build query asks for, validated.
type buildOptions struct {
	tags       []name.Tag
	typed      []string // the tags as the client wrote them, parallel to tags
	dockerfile string   // as sent; "" means the default
	buildArgs  map[string]*string
	labels     map[string]string
	target     string
	platform   string
	quiet      bool
	remote     string // an http(s) URL the server downloads the context from
	noCache    bool   // nocache=1: look nothing up in the step cache (docker build --no-cache)
	pull       bool   // pull=1: always ask the registry for the base (docker build --pull)
	noNetwork  bool   // networkmode=none: every RUN without network (docker build --network=none)
	limits     builder.Limits
	cacheFrom  []string // --cache-from images: not used, and the build says so (cacheFromWarning)
}

// apiError is an answer given before any output: an HTTP status and dockerd's message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// parseBuildOptions reads POST /build's query (docs/server.md, "POST /build: query
// parameters"). Parameters come from the URL only: a curl upload without a
// Content-Type is sent as a form, and reading the form would swallow the context
// ("curl and Content-Type").
//
// Parameters kiln cannot honour are refused with dockerd's message where dockerd
// refuses them too (isolation, securityopt, squash), and with a clear one where a
// silent no-op would change what RUN sees (extrahosts, a network other than the
// host's). Resource limits (memory, memswap, cpushares, cpuquota, cpuperiod,
// cpusetcpus, cpusetmems, shmsize, ulimits) become the build's Limits, applied to
// every RUN (parseLimits); cgroupparent is refused. nocache skips step-cache lookups (the
// results are still stored, as dockerd does); pull always asks the registry for the base
// image instead of using the base cache. cachefrom is validated and not used (the
// server's own step cache serves every build); a build given one says so in its stream
// (cacheFromWarning) rather than dropping it silently. rm and forcerm are accepted: kiln leaves
// no containers behind either way.
func parseBuildOptions(q url.Values) (*buildOptions, *apiError) {
	switch v := q.Get("version"); v {
	case "", "1":
	case "2":
		return nil, badRequest("BuildKit (version=2) is not supported by kiln: use the classic builder " +
			"(DOCKER_BUILDKIT=0 docker build, or a docker CLI without buildx)")
	default:
		return nil, &apiError{status: http.StatusInternalServerError, msg: fmt.Sprintf("invalid version %q", v)}
	}
	if iso := q.Get("isolation"); iso != "" && !strings.EqualFold(iso, "default") {
		return nil, badRequest("Unsupported isolation: %q", iso)
	}
	if nonEmpty(q["securityopt"]) {
		return nil, badRequest("The daemon on this platform does not support setting security options on build")
	}
	if boolValue(q.Get("squash")) {
		return nil, badRequest("squash is only supported with experimental mode")
	}
	if nonEmpty(q["extrahosts"]) {
		return nil, badRequest("extrahosts (--add-host) is not supported by kiln: RUN sees the server's /etc/hosts")
	}
	noNetwork := false
	switch nm := q.Get("networkmode"); nm {
	case "", "default", "host", "bridge":
		// RUN shares the server's network namespace (see package isolation).
	case "none":
		noNetwork = true // every RUN gets a namespace with only loopback
	default:
		return nil, badRequest("network mode %q is not supported by kiln: RUN uses the server's network", nm)
	}
	if o := q.Get("outputs"); o != "" && o != "[]" && o != "null" {
		return nil, badRequest("outputs are a BuildKit feature: kiln's classic builder stores the image and pushes its tags")
	}

	o := &buildOptions{
		dockerfile: q.Get("dockerfile"),
		target:     q.Get("target"),
		quiet:      boolValue(q.Get("q")),
		remote:     q.Get("remote"),
		noCache:    boolValue(q.Get("nocache")),
		noNetwork:  noNetwork,
		pull:       boolValue(q.Get("pull")),
	}
	for _, t := range q["t"] {
		if t == "" {
			continue
		}
		tag, err := store.ParseTag(t)
		if err != nil {
			return nil, badRequest("%s", err)
		}
		o.tags, o.typed = append(o.tags, tag), append(o.typed, t)
	}
	if err := jsonParam(q, "buildargs", &o.buildArgs); err != nil {
		return nil, badRequest("error reading build args: %s", err)
	}
	if err := jsonParam(q, "labels", &o.labels); err != nil {
		return nil, badRequest("error reading labels: %s", err)
	}
	if err := jsonParam(q, "cachefrom", &o.cacheFrom); err != nil {
		return nil, badRequest("error reading cache-from: %s", err)
	}
	limits, aerr := parseLimits(q)
	if aerr != nil {
		return nil, aerr
	}
	o.limits = limits
	if p := q.Get("platform"); p != "" {
		if _, err := v1.ParsePlatform(p); err != nil {
			return nil, badRequest("%q: invalid platform: %s", p, err)
		}
		o.platform = strings.ToLower(p)
	}
	if o.remote != "" && !contexts.IsGitURL(o.remote) && !contexts.IsHTTPURL(o.remote) && !(contexts.CloudOptions{}).IsBucketURL(o.remote) {
		return nil, badRequest("remote context %q is not supported: give a git repository, an http(s) URL of a tar or a Dockerfile, or an s3:// or gs:// archive", o.remote)
	}
	return o, nil
}

// jsonParam decodes a JSON-valued parameter; absent or empty leaves v alone.
func jsonParam(q url.Values, key string, v any) error {
	s := q.Get(key)
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// boolValue reads a boolean the way dockerd's BoolValue does: "", 0, no, false and none
// are false, anything else true.
func boolValue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

func nonEmpty(values []string) bool {
	for _, v := range values {
		if v != "" {
			return true
		}
	}
	return false
}

// cacheFromWarning is what a build that was given --cache-from images prints first: kiln
// does not take steps from them (its own step cache, shared by every build of the
// server, is where cached steps come from), and a CI pipeline that relies on them should
// know. "" when none were given.
func cacheFromWarning(images []string) string {
	var named []string
	for _, im := range images {
		if im != "" {
			named = append(named, im)
		}
	}
	if len(named) == 0 {
		return ""
	}
	return fmt.Sprintf("--cache-from %s is not used by kiln: cached steps come from the server's own step cache, "+
		"which every build of this server shares (kiln build --cache for a registry cache)", strings.Join(named, ", "))
}
