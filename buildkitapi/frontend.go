package buildkitapi

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

// frontendOptions are a dockerfile.v0 solve's frontend attributes, read.
type frontendOptions struct {
	filename      string // the Dockerfile's name in the dockerfile local
	dockerfileKey string // the session local that holds the Dockerfile
	contextKey    string // the session local that holds the context
	target        string
	buildArgs     map[string]*string
	labels        map[string]string
	platform      string
	noCache       bool
	pull          builder.PullPolicy
	// noNetwork is force-network-mode=none (buildx --network=none): every RUN
	// without network, as /build's networkmode=none.
	noNetwork bool
	// limits are shm-size and ulimit (buildx --shm-size, --ulimit), applied to every
	// RUN as /build's shmsize and ulimits are. buildx has no memory or cpu flags.
	limits builder.Limits
	// syntax is the # syntax= frontend the client asked for and kiln stands in for.
	syntax string
	// attestations are the attestation kinds asked for (provenance, sbom), which kiln
	// does not produce; the build says so and goes on.
	attestations []string
}

// parseFrontendOptions reads the attributes buildx and buildctl send (BuildKit's
// dockerfile frontend documents them). What kiln cannot honour is refused with a
// message naming it, as /build refuses the same things; shm-size and ulimit are the
// build's limits; cache imports are accepted as /build accepts them.
func parseFrontendOptions(attrs map[string]string) (*frontendOptions, error) {
	o := &frontendOptions{
		filename:      "Dockerfile",
		dockerfileKey: "dockerfile",
		contextKey:    "context",
		buildArgs:     map[string]*string{},
		labels:        map[string]string{},
		pull:          builder.PullIfMissing,
	}
	for k, v := range attrs {
		switch {
		case k == "filename":
			if v != "" {
				o.filename = v
			}
		case k == "dockerfilekey":
			if v != "" {
				o.dockerfileKey = v
			}
		case k == "contextkey":
			if v != "" {
				o.contextKey = v
			}
		case k == "target":
			o.target = v
		case strings.HasPrefix(k, "build-arg:"):
			v := v
			o.buildArgs[strings.TrimPrefix(k, "build-arg:")] = &v
		case strings.HasPrefix(k, "label:"):
			o.labels[strings.TrimPrefix(k, "label:")] = v
		case k == "platform":
			p, err := checkPlatform(v)
			if err != nil {
				return nil, err
			}
			o.platform = p
		case k == "no-cache":
			// "" is --no-cache; a list names stages (--no-cache-filter): kiln then
			// runs every step, which gives the same image.
			o.noCache = true
		case k == "image-resolve-mode":
			switch v {
			case "pull":
				o.pull = builder.PullAlways
			case "", "default", "local":
			default:
				return nil, fmt.Errorf("image-resolve-mode %q: want pull, default or local", v)
			}
		case k == "add-hosts":
			if v != "" {
				return nil, fmt.Errorf("--add-host is not supported by kiln: RUN sees the server's /etc/hosts")
			}
		case k == "force-network-mode":
			switch v {
			case "", "default", "host", "sandbox":
				// RUN shares the server's network namespace (see package isolation).
			case "none":
				o.noNetwork = true
			default:
				return nil, fmt.Errorf("network mode %q is not supported by kiln: RUN uses the server's network", v)
			}
		case k == "source", k == "cmdline":
			if ref := syntaxRef(v); ref != "" {
				o.syntax = ref
			}
		case k == "shm-size":
			if v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("shm-size %q: want a number of bytes", v)
				}
				o.limits.ShmSize = n
			}
		case k == "ulimit":
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				u, err := builder.ParseUlimit(f)
				if err != nil {
					return nil, fmt.Errorf("--ulimit: %w", err)
				}
				o.limits.Ulimits = append(o.limits.Ulimits, u)
			}
		case k == "cgroup-parent":
			if v != "" {
				return nil, fmt.Errorf("--cgroup-parent is not supported by kiln: the server puts each RUN in a cgroup of its own under its own")
			}
		case k == "cache-imports", k == "requestid", k == "frontend.caps", k == "contextsubdir", k == "multi-platform",
			k == "build-arg-default:BUILDKIT_SYNTAX",
			strings.HasPrefix(k, "exporter:"):
			// Accepted as /build accepts them: the server's own cache serves every
			// build; attestations are reported skipped.
		case strings.HasPrefix(k, "attest:"):
			if !strings.Contains(v, "disabled=true") {
				o.attestations = append(o.attestations, strings.TrimPrefix(k, "attest:"))
			}
		case strings.HasPrefix(k, "context:"), strings.HasPrefix(k, "input:"):
			return nil, fmt.Errorf("--build-context (%s) is not supported by kiln", strings.TrimPrefix(strings.TrimPrefix(k, "context:"), "input:"))
		case k == "call":
			if v != "" && v != "build" {
				return nil, fmt.Errorf("--call %s is not supported by kiln: it builds", v)
			}
		}
	}
	slices.Sort(o.attestations)
	return o, nil
}

// checkPlatform accepts the host's platform only, until kiln builds for others
// through this door (docs/platforms.md).
func checkPlatform(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if strings.Contains(v, ",") {
		return "", fmt.Errorf("platform %q: kiln builds one platform per build", v)
	}
	p, err := v1.ParsePlatform(v)
	if err != nil {
		return "", fmt.Errorf("platform %q: %w", v, err)
	}
	if p.OS != "linux" || p.Architecture != runtime.GOARCH {
		return "", fmt.Errorf("platform %q: this kiln builds for linux/%s only", v, runtime.GOARCH)
	}
	return strings.ToLower(v), nil
}
