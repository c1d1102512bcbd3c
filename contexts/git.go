package contexts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/kiln-build/kiln/nettimeout"
)

// GitOptions configure a git clone. The CLI fills them from kaniko's --git flag and
// the GIT_TOKEN, GIT_USERNAME and GIT_PASSWORD variables: this package reads no
// environment, so a server never clones with its own operator's credentials by accident.
type GitOptions struct {
	// Branch, when set, is the branch (or else tag) to clone, in place of the ref
	// the URL's fragment names: kaniko's --git branch= wins over #ref. A commit
	// fragment (#ref#commit) is still checked out.
	Branch string
	// SingleBranch fetches only that ref (--git single-branch=).
	SingleBranch bool
	// RecurseSubmodules also clones the submodules (--git recurse-submodules=).
	RecurseSubmodules bool
	// InsecureSkipTLS accepts any certificate of an https remote (--git insecure-skip-tls=).
	InsecureSkipTLS bool
	// PullMethod, when set, is the scheme a git:// context is fetched with, "https"
	// or "http": kaniko's GIT_PULL_METHOD, which makes git://host/repo.git mean
	// https://host/repo.git. Empty speaks the git protocol to a git:// URL, as
	// Docker's remote= does.
	PullMethod string
	// Token, or Username and Password, authenticate to an http(s) remote. A token
	// wins over a username and password and, as in kaniko, is sent as the user name
	// with an empty password (GitHub's form; GitLab and Bitbucket want
	// Username and Password instead).
	Token, Username, Password string
	// KeepGitDir keeps the clone's .git directory (ADD --keep-git-dir); by default it
	// is removed.
	KeepGitDir bool
	// SSHAgent opens a connection to the SSH agent whose keys authenticate a clone
	// over ssh (ssh://user@host/repo.git, user@host:repo.git): the build's "default"
	// agent, as BuildKit uses for ADD. An ssh remote without one is refused with
	// ErrNoSSHAgent; the process's own agent (SSH_AUTH_SOCK) is never used.
	SSHAgent func(ctx context.Context) (net.Conn, error)
	// SSHKnownHostsFile, when set, is a known_hosts file (or several separated by
	// ':', as in SSH_KNOWN_HOSTS) the ssh remote's host key must be listed in. Empty accepts any host key, as BuildKit's ADD does in
	// effect (it records the key it first sees, or checks none).
	SSHKnownHostsFile string
}

// gitRef is a parsed git context: where to clone from and what to check out.
type gitRef struct {
	url    string
	ref    string // a full or short ref name; "" is the remote's HEAD
	commit string // a commit to check out after the clone
	subDir string // Docker's url#ref:dir: the context is this directory of the clone
}

var hexCommit = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// parseGitURL splits kaniko's url#ref#commit syntax. A github.com/ shorthand becomes
// https, and git@host:path stays an scp-style ssh address.
func parseGitURL(spec string) gitRef {
	base, frag, _ := strings.Cut(spec, "#")
	ref, commit, _ := strings.Cut(frag, "#")
	// Docker's syntax is url#ref:dir; a ref name cannot contain ":", so this is safe.
	ref, sub, _ := strings.Cut(ref, ":")
	if strings.HasPrefix(base, "github.com/") {
		base = "https://" + base
	}
	if commit == "" && hexCommit.MatchString(ref) && len(ref) == 40 {
		ref, commit = "", ref
	}
	return gitRef{url: base, ref: ref, commit: commit, subDir: sub}
}

// FromGit clones the git repository spec names into dir and makes it a build
// context. spec is kaniko's syntax: git://host/repo.git#refs/heads/branch#commit,
// https://host/repo.git#ref, or github.com/owner/repo#ref; the first fragment is the
// ref (a full name, or a branch or tag name), the optional second a commit to check
// out; Docker's url#ref:dir form makes dir the context. The clone is shallow unless a
// commit must be found in the history. The .git directory is removed, so it never
// reaches COPY.
//
// limits are the archive contexts' WithMaxBytes and WithMaxEntries: the checked-out
// files may hold at most that many bytes and files, and the repository data fetched
// (the packfile, which a commit fragment makes a full history) at most that many
// bytes; past either the clone stops with ErrLimitExceeded.
func FromGit(ctx context.Context, spec, dir string, g GitOptions, limits ...ArchiveOption) (*Context, error) {
	var lim archiveSettings
	for _, o := range limits {
		o(&lim)
	}
	r := parseGitURL(spec)
	if rest, ok := strings.CutPrefix(r.url, "git://"); ok && g.PullMethod != "" {
		if g.PullMethod != "http" && g.PullMethod != "https" {
			return nil, fmt.Errorf("git context %s: pull method %q: want http or https", redactURL(r.url), g.PullMethod)
		}
		r.url = g.PullMethod + "://" + rest
	}
	if g.Branch != "" {
		r.ref = g.Branch
	}
	redacted := redactURL(r.url)
	opts := &git.CloneOptions{
		URL:             r.url,
		SingleBranch:    g.SingleBranch,
		InsecureSkipTLS: g.InsecureSkipTLS,
		Tags:            git.NoTags,
		Auth:            gitAuth(r.url, g),
	}
	if IsSSHGitURL(r.url) {
		auth, done, err := gitSSHAuth(ctx, r.url, g)
		if err != nil {
			return nil, fmt.Errorf("git context %s: %w", redacted, err)
		}
		defer done()
		opts.Auth = auth
	}
	if r.commit == "" {
		opts.Depth = 1
	}
	if g.RecurseSubmodules {
		opts.RecurseSubmodules = git.DefaultSubmoduleRecursionDepth
	}
	repo, err := cloneWatched(ctx, dir, opts, r.ref, lim)
	if err != nil {
		return nil, fmt.Errorf("git context %s: %w", redacted, err)
	}
	if r.commit != "" {
		wt, err := repo.Worktree()
		if err != nil {
			return nil, fmt.Errorf("git context %s: %w", redacted, err)
		}
		hash, err := repo.ResolveRevision(plumbing.Revision(r.commit))
		if err != nil {
			return nil, fmt.Errorf("git context %s: commit %s: %w", redacted, r.commit, err)
		}
		if err := wt.Checkout(&git.CheckoutOptions{Hash: *hash, Force: true}); err != nil {
			return nil, fmt.Errorf("git context %s: checkout %s: %w", redacted, r.commit, err)
		}
	}
	if !g.KeepGitDir {
		if err := removeOwned(dir + "/.git"); err != nil {
			return nil, err
		}
	}
	if r.subDir != "" {
		return subContext(dir, r.subDir)
	}
	c := &Context{Dir: dir}
	if err := c.readIgnoreInRoot(); err != nil {
		return nil, err
	}
	return c, nil
}

// cloneWatched runs cloneRef held to the network limits. go-git dials for itself
// (its git:// transport with no timeout at all, its http one through
// http.DefaultTransport, and neither can be swapped for one clone without changing
// go-git's global state), so the limits are enforced around it: the remote is first
// dialled once with the connect limit, and a watchdog cancels the clone once nothing
// (no repository data written, no progress message) has moved for the stall limit.
func cloneWatched(ctx context.Context, dir string, opts *git.CloneOptions, ref string, lim archiveSettings) (*git.Repository, error) {
	addr, err := gitDialAddress(opts.URL)
	if err != nil {
		return nil, err
	}
	if addr != "" {
		c, err := lim.net.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if lim.net.Guard != nil {
			opts.URL = pinGitURL(opts.URL, c.RemoteAddr())
		}
		c.Close()
	} else {
		addr = opts.URL
	}
	wctx, watch := lim.net.Watch(withGitGuard(ctx, lim.net.Guard), addr)
	defer watch.Stop()
	opts.Progress = watch
	lim.progress = watch.Progress
	lim.closed = &atomic.Bool{}

	type result struct {
		repo *git.Repository
		err  error
	}
	done := make(chan result, 1)
	go func() {
		repo, err := cloneRef(wctx, dir, opts, ref, lim)
		done <- result{repo, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-wctx.Done():
		// go-git returns soon after its context ends, except from the git://
		// transport's dial, which has no context: leave that behind, its writes
		// refused, rather than wait for the operating system to give up on it.
		select {
		case res = <-done:
		case <-time.After(abandonGrace):
			lim.closed.Store(true)
			res.err = wctx.Err()
		}
	}
	if res.err != nil {
		var fired *nettimeout.Error
		if errors.As(context.Cause(wctx), &fired) && ctx.Err() == nil {
			return nil, fired
		}
		return nil, res.err
	}
	return res.repo, nil
}

// abandonGrace is how long a clone whose context ended may take to return.
const abandonGrace = 5 * time.Second

// pinGitURL makes a git:// URL name the address its first dial reached, which the
// fetch guard has checked: go-git's git:// transport resolves the name again for
// itself, outside any guard, and a rebinding DNS server could answer differently the
// second time. http(s) URLs keep their names (TLS verifies them); their dials are
// guarded one by one (withGitGuard).
func pinGitURL(rawURL string, reached net.Addr) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "git" {
		return rawURL
	}
	tcp, ok := reached.(*net.TCPAddr)
	if !ok {
		return rawURL
	}
	ap := tcp.AddrPort()
	u.Host = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	return u.String()
}

// gitDialAddress is the host:port a clone of rawURL connects to first (an http(s)
// remote's proxy, when the environment names one), or "" when kiln cannot tell
// (file).
func gitDialAddress(rawURL string) (string, error) {
	if IsSSHGitURL(rawURL) {
		ep, err := transport.NewEndpoint(rawURL)
		if err != nil {
			return "", err
		}
		return sshDialAddress(ep), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", nil
	}
	port := map[string]string{"git": "9418", "http": "80", "https": "443"}[u.Scheme]
	if port == "" {
		return "", nil
	}
	if u.Scheme != "git" {
		proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u})
		if err != nil {
			return "", fmt.Errorf("proxy for %s: %w", redactURL(rawURL), err)
		}
		if proxy != nil {
			u = proxy
			port = map[string]string{"http": "80", "https": "443", "socks5": "1080"}[u.Scheme]
		}
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// cloneRef clones ref, trying a short name first as a branch, then as a tag.
func cloneRef(ctx context.Context, dir string, opts *git.CloneOptions, ref string, lim archiveSettings) (*git.Repository, error) {
	var candidates []plumbing.ReferenceName
	switch {
	case ref == "":
		candidates = []plumbing.ReferenceName{""}
	case strings.HasPrefix(ref, "refs/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	default:
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	var errs []error
	for _, name := range candidates {
		o := *opts
		o.ReferenceName = name
		repo, err := cloneLimited(ctx, dir, &o, lim)
		if err == nil {
			return repo, nil
		}
		if name != "" {
			err = fmt.Errorf("ref %s: %w", name, err)
		}
		errs = append(errs, err)
		if err := removeOwned(dir + "/.git"); err != nil {
			return nil, err
		}
		var noRef git.NoMatchingRefSpecError
		if !errors.Is(err, plumbing.ErrReferenceNotFound) && !errors.As(err, &noRef) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// cloneLimited clones into dir (its .git holding the repository) as
// git.PlainCloneContext does, with every write charged to the limits.
func cloneLimited(ctx context.Context, dir string, opts *git.CloneOptions, lim archiveSettings) (*git.Repository, error) {
	files := &cloneBudget{what: "the checked-out files", maxBytes: lim.maxBytes, maxEntries: int64(lim.maxEntries), progress: lim.progress, closed: lim.closed}
	data := &cloneBudget{what: "the repository data fetched", maxBytes: lim.maxBytes, progress: lim.progress, closed: lim.closed}
	wt := &limitFS{Filesystem: osfs.New(dir), budget: files, entries: true}
	dot := &limitFS{Filesystem: osfs.New(filepath.Join(dir, git.GitDirName)), budget: data}
	st := filesystem.NewStorage(dot, cache.NewObjectLRUDefault())
	repo, err := git.CloneContext(ctx, st, wt, opts)
	if lerr := errors.Join(files.failed(), data.failed()); lerr != nil {
		return nil, lerr
	}
	return repo, err
}

// gitAuth returns basic-auth credentials for an http(s) remote, nil otherwise.
func gitAuth(rawURL string, g GitOptions) transport.AuthMethod {
	if !IsHTTPURL(rawURL) {
		return nil
	}
	switch {
	case g.Token != "":
		return &githttp.BasicAuth{Username: g.Token}
	case g.Username != "" || g.Password != "":
		return &githttp.BasicAuth{Username: g.Username, Password: g.Password}
	}
	return nil
}

// redactURL hides a password written into the URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
