package contexts

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/kiln-build/kiln/nettimeout"
)

// go-git's http(s) transport dials through http.DefaultTransport and cannot be given
// a client for one clone, only installed for every clone of the process
// (client.InstallProtocol). kiln installs, once, a client whose dial reads the
// clone's fetch guard from the request's context (go-git sends every request with
// the clone's context), so each connection of a clone, redirects included, is
// checked against that clone's policy, and a clone without one dials as go-git's
// default would. The installed value never changes afterwards: the per-clone state
// travels in the context, not in the package.
var gitHTTPOnce sync.Once

// guardKey carries a clone's nettimeout.Guard in its context.
type guardKey struct{}

// withGitGuard returns ctx carrying g for the http(s) dials of a go-git clone run
// with it, after making sure kiln's go-git http client is installed.
func withGitGuard(ctx context.Context, g nettimeout.Guard) context.Context {
	gitHTTPOnce.Do(installGitHTTP)
	if g == nil {
		return ctx
	}
	return context.WithValue(ctx, guardKey{}, g)
}

func installGitHTTP() {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = dialGuarded
	c := githttp.NewClient(&http.Client{Transport: t})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}

// dialGuarded dials as http.DefaultTransport does, checking the resolved address
// against the guard ctx carries, if any.
func dialGuarded(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if g, ok := ctx.Value(guardKey{}).(nettimeout.Guard); ok {
		d.Control = nettimeout.Limits{Guard: g}.Control(address)
	}
	return d.DialContext(ctx, network, address)
}
