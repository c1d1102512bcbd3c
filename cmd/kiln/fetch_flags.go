package main

import (
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/fetchpolicy"
	"github.com/kiln-build/kiln/nettimeout"
)

// fetchFlags are --fetch-policy and --fetch-allow, which kiln build and kiln serve
// share with different defaults: a server fetches for whoever sent the request,
// inside its operator's network, so it is strict; kiln build runs on its user's own
// machine and is open unless told otherwise (docs/security.md).
type fetchFlags struct {
	fetchPolicy string
	fetchAllow  []string
}

// addFetchFlags registers the fetch policy flags with def as --fetch-policy's default.
func addFetchFlags(fs *pflag.FlagSet, f *fetchFlags, def string) {
	fs.StringVar(&f.fetchPolicy, "fetch-policy", def, "What a build may fetch for its Dockerfile and context (remote/--context URLs, git, buckets, ADD URLs; not registries): strict refuses loopback, link-local (cloud metadata), private, CGNAT, unspecified and multicast addresses, checked after DNS resolution and on every redirect; open allows everything.")
	fs.StringArrayVar(&f.fetchAllow, "fetch-allow", nil, "With --fetch-policy=strict, allow an address range (CIDR), an address or a host name the strict policy refuses, e.g. 10.0.0.0/8 or git.internal. Repeat for several.")
}

// guard returns the policy the flags name, nil when it is open.
func (f fetchFlags) guard() (nettimeout.Guard, error) {
	p, err := fetchpolicy.New(f.fetchPolicy, f.fetchAllow)
	if err != nil || !p.IsStrict() {
		return nil, err
	}
	return p, nil
}

// fetchPolicyName names the policy g is, for the server's start-up line.
func fetchPolicyName(g nettimeout.Guard) string {
	if p, ok := g.(fetchpolicy.Policy); ok {
		return p.String()
	}
	return fetchpolicy.Open
}
