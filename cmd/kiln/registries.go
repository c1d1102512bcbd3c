package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/nettimeout"
)

// kaniko's environment equivalents of --registry-mirror (a comma-separated list) and
// --registry-map (the flag's own orig=mirror;... syntax), each tried after its flag.
const (
	registryMirrorEnv = "KANIKO_REGISTRY_MIRROR"
	registryMapEnv    = "KANIKO_REGISTRY_MAP"
)

// registryKey spells a registry as go-containerregistry does (docker.io is
// index.docker.io), so flags match the registry of parsed references.
func registryKey(s string) (string, error) {
	r, err := name.NewRegistry(strings.TrimSpace(s), name.WeakValidation)
	if err != nil {
		return "", quoteBadPart(err)
	}
	return r.RegistryStr(), nil
}

// mirrorSources are where mirrors come from, in kaniko's order: --registry-map, then
// KANIKO_REGISTRY_MAP, then --registry-mirror and KANIKO_REGISTRY_MIRROR (docker.io's
// mirrors, after any map of docker.io).
type mirrorSources struct {
	maps      []string // --registry-map values, each orig=mirror;orig=mirror
	mapEnv    string   // KANIKO_REGISTRY_MAP
	mirrors   []string // --registry-mirror values
	mirrorEnv string   // KANIKO_REGISTRY_MIRROR, comma-separated
}

// parseRegistryMirrors turns the mirror sources into each registry's mirrors in the
// order they are tried.
func parseRegistryMirrors(src mirrorSources) (map[string][]string, error) {
	out := map[string][]string{}
	for _, flag := range src.maps {
		if err := parseRegistryMap(out, "--registry-map", flag); err != nil {
			return nil, err
		}
	}
	if err := parseRegistryMap(out, registryMapEnv, src.mapEnv); err != nil {
		return nil, err
	}
	all := src.mirrors
	if src.mirrorEnv != "" {
		all = append(all[:len(all):len(all)], strings.Split(src.mirrorEnv, ",")...)
	}
	for _, m := range all {
		if m = strings.TrimSpace(m); m != "" {
			out[name.DefaultRegistry] = append(out[name.DefaultRegistry], m)
		}
	}
	return out, nil
}

// parseRegistryMap adds one orig=mirror;orig=mirror value, from the option named
// what, to out.
func parseRegistryMap(out map[string][]string, what, value string) error {
	for _, pair := range strings.Split(value, ";") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		orig, mirror, ok := strings.Cut(pair, "=")
		mirror = strings.TrimSpace(mirror)
		if !ok || mirror == "" || strings.TrimSpace(orig) == "" {
			return fmt.Errorf("%s %q: want original=mirror", what, pair)
		}
		key, err := registryKey(orig)
		if err != nil {
			return fmt.Errorf("%s %q: %w", what, pair, err)
		}
		out[key] = append(out[key], mirror)
	}
	return nil
}

// registryTransports builds one HTTP transport per registry named by
// --registry-certificate host=ca.crt (an extra CA trusted besides the system's) or
// --registry-client-cert host=cert,key (a client certificate for mutual TLS). The
// files are read now, so a bad path fails the build before it starts.
func registryTransports(certs, clientCerts []string, base *http.Transport) (map[string]*http.Transport, error) {
	out := map[string]*http.Transport{}
	get := func(host string) (*tls.Config, error) {
		key, err := registryKey(host)
		if err != nil {
			return nil, err
		}
		tr, ok := out[key]
		if !ok {
			tr = base.Clone()
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			out[key] = tr
		}
		return tr.TLSClientConfig, nil
	}
	for _, c := range certs {
		host, path, ok := strings.Cut(c, "=")
		if !ok || path == "" || host == "" {
			return nil, fmt.Errorf("--registry-certificate %q: want registry=/path/ca.crt", c)
		}
		cfg, err := get(host)
		if err != nil {
			return nil, fmt.Errorf("--registry-certificate %q: %w", c, err)
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--registry-certificate: %w", err)
		}
		if cfg.RootCAs == nil {
			if cfg.RootCAs, err = x509.SystemCertPool(); err != nil {
				cfg.RootCAs = x509.NewCertPool()
			}
		}
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--registry-certificate: no PEM certificate in %s", path)
		}
	}
	for _, c := range clientCerts {
		host, files, ok := strings.Cut(c, "=")
		certPath, keyPath, ok2 := strings.Cut(files, ",")
		if !ok || !ok2 || host == "" || certPath == "" || keyPath == "" {
			return nil, fmt.Errorf("--registry-client-cert %q: want registry=/path/cert.pem,/path/key.pem", c)
		}
		cfg, err := get(host)
		if err != nil {
			return nil, fmt.Errorf("--registry-client-cert %q: %w", c, err)
		}
		pair, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("--registry-client-cert %s,%s: %w", certPath, keyPath, err)
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	return out, nil
}

// transportLookup returns a function giving a registry's transport: its own, or def.
func transportLookup(trs map[string]*http.Transport, def http.RoundTripper) func(registry string) http.RoundTripper {
	return func(registry string) http.RoundTripper {
		if tr, ok := trs[registry]; ok {
			return tr
		}
		return def
	}
}

// registryPlan is what the registry flags turn into: each registry's mirrors and
// transports, shared by pulls and pushes.
type registryPlan struct {
	mirrors    map[string][]string
	transports map[string]*http.Transport
	net        nettimeout.Limits
	def        *http.Transport // go-containerregistry's default, held to net
}

// planRegistries checks the registry flags (and their KANIKO_ variables) and loads the
// certificates they name.
func planRegistries(f *buildFlags, lookupEnv func(string) (string, bool)) (registryPlan, error) {
	return planRegistryFlags(f.registryFlags, lookupEnv)
}

// registryFlags are the registry options kiln build and kiln serve share.
type registryFlags struct {
	registryMirrors, registryMaps             []string
	skipDefaultRegistryFallback               bool
	registryCertificates, registryClientCerts []string
	netConnect, netStall                      time.Duration
}

// The variables that set the network limits when their flags are not given.
const (
	netConnectEnv = "KILN_NET_CONNECT_TIMEOUT"
	netStallEnv   = "KILN_NET_STALL_TIMEOUT"
)

// netLimits reads --net-connect-timeout and --net-stall-timeout, or their variables;
// neither given means nettimeout's defaults. A limit must be positive: a build
// server has no unbounded wait.
func (f registryFlags) netLimits(lookupEnv func(string) (string, bool)) (nettimeout.Limits, error) {
	var l nettimeout.Limits
	for _, lim := range []struct {
		flag, env string
		value     time.Duration
		dst       *time.Duration
	}{
		{nettimeout.ConnectSetting, netConnectEnv, f.netConnect, &l.Connect},
		{nettimeout.StallSetting, netStallEnv, f.netStall, &l.Stall},
	} {
		what, d := lim.flag, lim.value
		if v, ok := lookupEnv(lim.env); ok && v != "" && d == 0 {
			parsed, err := time.ParseDuration(v)
			if err != nil {
				return l, fmt.Errorf("%s=%q: not a duration (e.g. 30s, 2m)", lim.env, v)
			}
			what, d = lim.env, parsed
			if d == 0 {
				return l, fmt.Errorf("%s=%q: must be positive", what, v)
			}
		}
		if d < 0 {
			return l, fmt.Errorf("%s %s: must be positive", what, d)
		}
		*lim.dst = d
	}
	return l, nil
}

// planRegistryFlags is planRegistries for any front door's registry flags.
func planRegistryFlags(f registryFlags, lookupEnv func(string) (string, bool)) (registryPlan, error) {
	src := mirrorSources{maps: f.registryMaps, mirrors: f.registryMirrors}
	src.mapEnv, _ = lookupEnv(registryMapEnv)
	src.mirrorEnv, _ = lookupEnv(registryMirrorEnv)
	mirrors, err := parseRegistryMirrors(src)
	if err != nil {
		return registryPlan{}, err
	}
	limits, err := f.netLimits(lookupEnv)
	if err != nil {
		return registryPlan{}, err
	}
	def := limits.Transport(remote.DefaultTransport.(*http.Transport))
	trs, err := registryTransports(f.registryCertificates, f.registryClientCerts, def)
	if err != nil {
		return registryPlan{}, err
	}
	return registryPlan{mirrors: mirrors, transports: trs, net: limits, def: def}, nil
}

// apply adds the mirrors and transports to a pull configuration.
func (rp registryPlan) apply(reg *builder.Registry, skipFallback bool) {
	if len(rp.mirrors) > 0 {
		reg.Mirrors = func(registry string) []string { return rp.mirrors[registry] }
		reg.SkipDefaultFallback = skipFallback
	}
	reg.Transport = transportLookup(rp.transports, rp.def)
	reg.Net = rp.net
}

// pushTransport returns the transport pushes to registry use: its own, or the default.
func (rp registryPlan) pushTransport(registry string) http.RoundTripper {
	if tr, ok := rp.transports[registry]; ok {
		return tr
	}
	if rp.def != nil {
		return rp.def
	}
	return remote.DefaultTransport
}

// transportFor returns the transport pushes to registry use.
func (o outputs) transportFor(registry string) http.RoundTripper {
	if o.pushTransport == nil {
		return remote.DefaultTransport
	}
	return o.pushTransport(registry)
}

// pushConfig is how kiln build pushes, for output.Write and for the permission
// check before the build.
func (o outputs) pushConfig(kc authn.Keychain) output.PushConfig {
	return output.PushConfig{
		Keychain:            kc,
		Transport:           o.transportFor,
		SkipTLSVerify:       o.skipTLSVerify,
		Retries:             o.pushRetry,
		UserAgent:           "kiln/" + version,
		IgnoreImmutableTags: o.ignoreImmutableTags,
	}
}

// pushChecker checks that a push to ref would be accepted (output.CheckPushPermission).
type pushChecker func(ctx context.Context, ref name.Reference, opts ...output.PushOption) error

// checkPushPermissions runs check once per destination repository before the build,
// as kaniko does, unless nothing is pushed or --skip-push-permission-check was given.
// Mirrors only serve pulls, so the destinations themselves are asked.
func checkPushPermissions(ctx context.Context, out outputs, kc authn.Keychain, check pushChecker) error {
	if !out.push || out.skipPushCheck || check == nil {
		return nil
	}
	checked := map[string]bool{}
	for _, d := range out.destinations {
		repo := d.Context().String()
		if checked[repo] {
			continue
		}
		checked[repo] = true
		if err := check(ctx, d, out.pushConfig(kc).Options(d.RegistryStr(), func(name.Reference, error) {})...); err != nil {
			return fmt.Errorf("%w (nothing was built; --skip-push-permission-check skips this check)", err)
		}
	}
	return nil
}
