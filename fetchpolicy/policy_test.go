package fetchpolicy_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/fetchpolicy"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		mode  string
		allow []string
		host  string
		addr  string
		rule  string // "" means allowed
	}{
		{"public v4", fetchpolicy.Strict, nil, "example.com", "93.184.216.34", ""},
		{"public v6", fetchpolicy.Strict, nil, "", "2606:2800:220:1::1", ""},
		{"loopback", fetchpolicy.Strict, nil, "", "127.0.0.1", "a loopback address"},
		{"loopback other", fetchpolicy.Strict, nil, "", "127.8.9.10", "a loopback address"},
		{"loopback v6", fetchpolicy.Strict, nil, "", "::1", "a loopback address"},
		{"v4-mapped loopback", fetchpolicy.Strict, nil, "", "::ffff:127.0.0.1", "a loopback address"},
		{"metadata", fetchpolicy.Strict, nil, "", "169.254.169.254", "a link-local address (cloud metadata)"},
		{"link-local v6 with zone", fetchpolicy.Strict, nil, "", "fe80::1%eth0", "a link-local address (cloud metadata)"},
		{"private 10", fetchpolicy.Strict, nil, "", "10.1.2.3", "a private address"},
		{"private 172.16", fetchpolicy.Strict, nil, "", "172.31.255.1", "a private address"},
		{"not private 172.32", fetchpolicy.Strict, nil, "", "172.32.0.1", ""},
		{"private 192.168", fetchpolicy.Strict, nil, "", "192.168.0.1", "a private address"},
		{"unique local v6", fetchpolicy.Strict, nil, "", "fd00::1", "a private address"},
		{"cgnat", fetchpolicy.Strict, nil, "", "100.64.0.1", "a shared (CGNAT) address"},
		{"unspecified", fetchpolicy.Strict, nil, "", "0.0.0.0", "an unspecified address"},
		{"unspecified v6", fetchpolicy.Strict, nil, "", "::", "an unspecified address"},
		{"multicast", fetchpolicy.Strict, nil, "", "239.1.1.1", "a multicast address"},
		{"multicast v6", fetchpolicy.Strict, nil, "", "ff02::1", "a multicast address"},
		{"broadcast", fetchpolicy.Strict, nil, "", "255.255.255.255", "a broadcast address"},
		{"nat64 of metadata", fetchpolicy.Strict, nil, "", "64:ff9b::a9fe:a9fe", "a link-local address (cloud metadata)"},
		{"open allows metadata", fetchpolicy.Open, nil, "", "169.254.169.254", ""},
		{"zero mode is open", "", nil, "", "127.0.0.1", ""},
		{"allowed address", fetchpolicy.Strict, []string{"127.0.0.1"}, "", "127.0.0.1", ""},
		{"allowed address, not its neighbour", fetchpolicy.Strict, []string{"127.0.0.2"}, "", "127.0.0.1", "a loopback address"},
		{"allowed cidr", fetchpolicy.Strict, []string{"10.0.0.0/8"}, "", "10.200.0.1", ""},
		{"allowed cidr, other range", fetchpolicy.Strict, []string{"10.0.0.0/8"}, "", "192.168.1.1", "a private address"},
		{"allowed v6 address", fetchpolicy.Strict, []string{"[::1]"}, "", "::1", ""},
		{"allowed v4 covers its mapped form", fetchpolicy.Strict, []string{"127.0.0.1"}, "", "::ffff:127.0.0.1", ""},
		{"allowed host", fetchpolicy.Strict, []string{"Git.Internal."}, "git.internal", "10.0.0.5", ""},
		{"allowed host, other name", fetchpolicy.Strict, []string{"git.internal"}, "evil.example", "10.0.0.5", "a private address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := fetchpolicy.New(c.mode, c.allow)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(c.host, netip.MustParseAddr(c.addr))
			if c.rule == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", c.addr, err)
				}
				return
			}
			var r *fetchpolicy.Refusal
			if !errors.As(err, &r) || r.Rule != c.rule {
				t.Fatalf("Check(%s) = %v, want a refusal as %q", c.addr, err, c.rule)
			}
			for _, want := range []string{c.rule, "--fetch-allow", "--fetch-policy=strict"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not name %q", err, want)
				}
			}
		})
	}
}

func TestRefusalMessage(t *testing.T) {
	t.Parallel()
	p, err := fetchpolicy.New(fetchpolicy.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.CheckDial("metadata.internal:80", "169.254.169.254:80")
	want := "metadata.internal (169.254.169.254) is a link-local address (cloud metadata), refused by the fetch policy (--fetch-policy=strict, kiln serve's default); allow it with --fetch-allow 169.254.169.254"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestNewRefusesBadRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode  string
		allow []string
		want  string
	}{
		{"lax", nil, "--fetch-policy=lax: want strict or open"},
		{fetchpolicy.Open, []string{"10.0.0.0/8"}, "the fetch policy is open"},
		{fetchpolicy.Strict, []string{"10.0.0.0/33"}, "not a CIDR"},
		{fetchpolicy.Strict, []string{"http://x"}, "no port, no scheme"},
		{fetchpolicy.Strict, []string{"host:80"}, "no port, no scheme"},
		{fetchpolicy.Strict, []string{""}, "empty rule"},
	}
	for _, c := range cases {
		_, err := fetchpolicy.New(c.mode, c.allow)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q) = %v, want an error with %q", c.mode, c.allow, err, c.want)
		}
	}
}
