// Package fetchpolicy decides which addresses kiln may connect to when it fetches
// something for a client: a remote= context, an ADD URL, a git repository, a bucket.
// A build server fetches inside its operator's network, so a URL in a pull request
// could otherwise reach cloud metadata (169.254.169.254) or an internal service:
// server-side request forgery. The strict policy refuses loopback, link-local,
// private, shared (CGNAT), unspecified, broadcast and multicast addresses unless an
// allow rule (--fetch-allow CIDR|host) names them.
//
// The check is made on the address a connection is about to be made to, after DNS
// resolution (Policy implements nettimeout.Guard), so a name that resolves, or is
// rebound, to a refused address is refused, on the first request and on every
// redirect alike. Registries are out of its scope: base images and pushes go to
// registries the operator configures.
package fetchpolicy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The policy's names, as the flags take them.
const (
	// Strict refuses the special-purpose ranges unless allowed: kiln serve's default.
	Strict = "strict"
	// Open checks nothing: kiln build's default, a user fetching on their own machine.
	Open = "open"

	// PolicySetting and AllowSetting are the flags, as refusals name them.
	PolicySetting = "--fetch-policy"
	AllowSetting  = "--fetch-allow"
)

// Policy is a fetch policy. The zero Policy is open: it allows every address.
type Policy struct {
	strict bool
	nets   []netip.Prefix
	hosts  []string // lower case, without a trailing dot
}

// New returns the policy named mode (Strict or Open; "" means Open) with the allow
// rules allow, each a CIDR ("10.1.0.0/16"), an address ("127.0.0.1", "::1") or a
// host name ("git.internal", allowed whatever it resolves to). Allow rules need the
// strict policy: with the open one they would mean nothing.
func New(mode string, allow []string) (Policy, error) {
	var p Policy
	switch mode {
	case Strict:
		p.strict = true
	case Open, "":
		if len(allow) > 0 {
			return Policy{}, fmt.Errorf("%s %s: the fetch policy is open, so there is nothing to allow (add %s=%s)", AllowSetting, allow[0], PolicySetting, Strict)
		}
		return p, nil
	default:
		return Policy{}, fmt.Errorf("%s=%s: want %s or %s", PolicySetting, mode, Strict, Open)
	}
	for _, a := range allow {
		if err := p.add(a); err != nil {
			return Policy{}, fmt.Errorf("%s %q: %w", AllowSetting, a, err)
		}
	}
	return p, nil
}

func (p *Policy) add(rule string) error {
	rule = strings.TrimSpace(rule)
	if rule == "" {
		return fmt.Errorf("empty rule: want a CIDR, an address or a host name")
	}
	if strings.Contains(rule, "://") {
		return fmt.Errorf("want a CIDR, an address or a host name (no port, no scheme)")
	}
	if strings.Contains(rule, "/") {
		pfx, err := netip.ParsePrefix(rule)
		if err != nil {
			return fmt.Errorf("not a CIDR: %w", err)
		}
		p.nets = append(p.nets, pfx.Masked())
		return nil
	}
	if a, err := netip.ParseAddr(strings.Trim(rule, "[]")); err == nil {
		a = a.WithZone("").Unmap()
		p.nets = append(p.nets, netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
	if strings.ContainsAny(rule, ":@ ") {
		return fmt.Errorf("want a CIDR, an address or a host name (no port, no scheme)")
	}
	p.hosts = append(p.hosts, canonicalHost(rule))
	return nil
}

// IsStrict reports whether the policy checks anything.
func (p Policy) IsStrict() bool { return p.strict }

// String names the policy and its allow rules, for logs.
func (p Policy) String() string {
	if !p.strict {
		return Open
	}
	var allow []string
	for _, n := range p.nets {
		if n.IsSingleIP() {
			allow = append(allow, n.Addr().String())
		} else {
			allow = append(allow, n.String())
		}
	}
	allow = append(allow, p.hosts...)
	if len(allow) == 0 {
		return Strict
	}
	return Strict + " (allowing " + strings.Join(allow, ", ") + ")"
}

// rule is a refused range and what it is.
type rule struct {
	what string
	nets []netip.Prefix
}

// refused lists the ranges the strict policy refuses, the first match naming the
// refusal. IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
var refused = []rule{
	{"an unspecified address", prefixes("0.0.0.0/8", "::/128")},
	{"a loopback address", prefixes("127.0.0.0/8", "::1/128")},
	{"a link-local address (cloud metadata)", prefixes("169.254.0.0/16", "fe80::/10")},
	{"a private address", prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")},
	{"a shared (CGNAT) address", prefixes("100.64.0.0/10")},
	{"a multicast address", prefixes("224.0.0.0/4", "ff00::/8")},
	{"a broadcast address", prefixes("255.255.255.255/32")},
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// Check reports whether a connection to addr, made to fetch from host (the name the
// URL gave; "" or the address itself when it gave an address), is allowed. A refusal
// is a *Refusal naming the rule.
func (p Policy) Check(host string, addr netip.Addr) error {
	if !p.strict {
		return nil
	}
	addr = addr.WithZone("").Unmap()
	if host != "" && p.hostAllowed(host) {
		return nil
	}
	for _, n := range p.nets {
		if n.Contains(addr) {
			return nil
		}
	}
	if !addr.IsValid() {
		return &Refusal{Host: host, Rule: "not an IP address"}
	}
	// NAT64 (64:ff9b::/96) carries an IPv4 address a gateway connects to.
	check := []netip.Addr{addr}
	if nat64.Contains(addr) {
		b := addr.As16()
		check = append(check, netip.AddrFrom4([4]byte(b[12:])))
	}
	for _, a := range check {
		for _, r := range refused {
			for _, n := range r.nets {
				if n.Contains(a) {
					return &Refusal{Host: host, Addr: addr, Rule: r.what}
				}
			}
		}
	}
	return nil
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

func (p Policy) hostAllowed(host string) bool {
	h := canonicalHost(host)
	for _, a := range p.hosts {
		if a == h {
			return true
		}
	}
	return false
}

func canonicalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// CheckDial is the nettimeout.Guard hook: address is what the dial was asked for
// (host:port), resolved the ip:port the connection is about to be made to.
func (p Policy) CheckDial(address, resolved string) error {
	if !p.strict {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	ip, _, err := net.SplitHostPort(resolved)
	if err != nil {
		ip = resolved
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return &Refusal{Host: host, Rule: "not an IP address"}
	}
	return p.Check(host, a)
}

// Refusal is a connection the policy refused: Rule says which range Addr is in.
type Refusal struct {
	// Host is the name the fetch asked for ("" or the address when it gave one).
	Host string
	// Addr is the address the connection would have been made to.
	Addr netip.Addr
	// Rule is what the address is: "a link-local address (cloud metadata)".
	Rule string
}

func (e *Refusal) Error() string {
	who := e.Addr.String()
	if !e.Addr.IsValid() {
		who = e.Host
	}
	if h := canonicalHost(e.Host); h != "" && e.Addr.IsValid() && h != canonicalHost(who) {
		who = e.Host + " (" + who + ")"
	}
	allow := e.Addr.String()
	if !e.Addr.IsValid() {
		allow = e.Host
	}
	return fmt.Sprintf("%s is %s, refused by the fetch policy (%s=%s, kiln serve's default); allow it with %s %s",
		who, e.Rule, PolicySetting, Strict, AllowSetting, allow)
}
