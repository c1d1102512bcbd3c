package contexts

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kiln-build/kiln/compression"
)

// WithHTTPClient sets the client FromURL downloads with (default: one held to
// WithNetLimits' limits).
func WithHTTPClient(c *http.Client) ArchiveOption {
	return func(s *archiveSettings) { s.client = c }
}

// WithDockerfileName names the file a plain-text download is saved as (default
// "Dockerfile"); FromArchive ignores it.
func WithDockerfileName(name string) ArchiveOption {
	return func(s *archiveSettings) { s.dockerfile = name }
}

// IsGitURL reports whether a remote context names a git repository, by dockerd's
// rules: git:// and git@ addresses, github.com/ paths, and http(s) URLs whose path
// ends in .git (optionally followed by #ref:dir).
func IsGitURL(s string) bool {
	for _, p := range []string{"git://", "git@", "github.com/"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	if !IsHTTPURL(s) {
		return false
	}
	return gitSuffix.MatchString(s)
}

var gitSuffix = regexp.MustCompile(`\.git(?:#.+)?$`)

// IsHTTPURL reports whether s is an http or https URL.
func IsHTTPURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// FromURL downloads an http(s) URL and makes it a build context in dir, as dockerd
// does for POST /build?remote=: a tar (plain or compressed) is extracted like
// FromArchive; anything else is taken to be a Dockerfile, saved in an otherwise empty
// context under WithDockerfileName's name. WithMaxBytes bounds the download as well
// as the extracted files.
//
// The server fetches whatever URL its client names, so deployments that must not
// reach internal addresses should not expose remote= to untrusted clients.
func FromURL(ctx context.Context, rawURL, dir string, opts ...ArchiveOption) (*Context, error) {
	s := archiveSettings{dockerfile: "Dockerfile"}
	for _, o := range opts {
		o(&s)
	}
	if s.client == nil {
		s.client = s.net.Client()
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("remote context %q: not an http(s) URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("remote context %s: %w", u.Redacted(), err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote context: %w", err) // url.Error redacts the password
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("failed to GET %s with status %s", u.Redacted(), resp.Status)
	}
	var body io.Reader = resp.Body
	if s.maxBytes > 0 {
		body = &limitReader{r: resp.Body, n: s.maxBytes, what: u.Redacted()}
	}
	br := bufio.NewReaderSize(body, 64<<10)
	head, _ := br.Peek(512)
	if compression.Detect(head) != compression.Uncompressed || isTarHeader(head) {
		return FromArchive(ctx, br, dir, opts...)
	}
	return dockerfileContext(br, dir, s.dockerfile)
}

// isTarHeader reports whether block is a tar header (its checksum is right).
func isTarHeader(block []byte) bool {
	if len(block) < 512 {
		return false
	}
	_, err := tar.NewReader(bytes.NewReader(block[:512])).Next()
	return err == nil
}

// dockerfileContext writes r as the only file of a new context.
func dockerfileContext(r io.Reader, dir, name string) (*Context, error) {
	rel, err := entryName(name)
	if err != nil || rel == "." || strings.Contains(rel, "/") {
		return nil, fmt.Errorf("remote context: invalid Dockerfile name %q", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("context directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("context directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(abs, rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("remote context: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("remote context: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("remote context: %w", err)
	}
	return &Context{Dir: abs}, nil
}

// limitReader fails, rather than silently stopping, once more than n bytes arrive.
type limitReader struct {
	r    io.Reader
	n    int64
	what string
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, fmt.Errorf("%w: %s is larger than the limit", ErrLimitExceeded, l.what)
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, fmt.Errorf("%w: %s is larger than the limit", ErrLimitExceeded, l.what)
	}
	return n, err
}
