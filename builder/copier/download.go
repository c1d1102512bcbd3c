package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// unnamedFilename is the name a download gets when neither its URL nor its
// Content-Disposition names it (the classic builder's choice too).
const unnamedFilename = "__unnamed__"

// maxErrorBody caps how much of an error response's body goes into the error.
const maxErrorBody = 4 << 10

// isURL reports whether an ADD source is downloaded rather than looked up.
func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// download fetches rawURL into a temporary file as the classic builder's downloadSource
// does: mode 0600, mtime from Last-Modified or else the Unix epoch, and a name from the
// URL path or the Content-Disposition header.
func (c *copier) download(ctx context.Context, rawURL string) (item, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return item{}, fmt.Errorf("invalid URL: %w", err)
	}
	shown := u.Redacted()
	want := digest.Digest(c.req.Checksum)
	if want != "" {
		if err := want.Validate(); err != nil {
			return item{}, fmt.Errorf("--checksum=%s: %w", c.req.Checksum, err)
		}
	}
	client := c.req.HTTPClient
	if client == nil {
		client = c.req.Net.Client()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return item{}, fmt.Errorf("GET %s: %w", shown, err)
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return item{}, err // *url.Error names the (redacted) URL
	}
	defer resp.Body.Close()
	// Like the classic builder's GetWithStatusError, anything below 400 is a body to
	// keep; redirects have been followed by the client already.
	if resp.StatusCode >= http.StatusBadRequest {
		msg := fmt.Sprintf("failed to GET %s with status %s", shown, resp.Status)
		if body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)); len(bytes.TrimSpace(body)) > 0 {
			msg += ": " + string(bytes.TrimSpace(body))
		}
		return item{}, errors.New(msg)
	}

	name := filenameForDownload(u.Path, resp.Header.Get("Content-Disposition"))
	if name == "" {
		if strings.HasSuffix(c.req.Dest, "/") {
			return item{}, fmt.Errorf("cannot determine filename for source %s", shown)
		}
		name = unnamedFilename
	}

	dir, err := os.MkdirTemp(c.req.TempDir, "kiln-add-")
	if err != nil {
		return item{}, fmt.Errorf("downloading %s: %w", shown, err)
	}
	c.tmpPaths = append(c.tmpPaths, dir)
	tmp := filepath.Join(dir, "download")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return item{}, fmt.Errorf("downloading %s: %w", shown, err)
	}
	var verify hash.Hash
	var body io.Reader = resp.Body
	if want != "" {
		verify = want.Algorithm().Hash()
		body = io.TeeReader(resp.Body, verify)
	}
	_, err = io.CopyBuffer(f, body, c.buf)
	if err == nil {
		err = f.Chmod(0o600) // whatever the umask did
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return item{}, fmt.Errorf("downloading %s: %w", shown, err)
	}
	// BuildKit's message, word for word: the digest found, then the one expected.
	if got := digestOf(want, verify); got != want {
		return item{}, fmt.Errorf("digest mismatch %s: %s", got, want)
	}

	mtime := lastModified(resp.Header.Get("Last-Modified"))
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return item{}, fmt.Errorf("downloading %s: %w", shown, err)
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return item{}, fmt.Errorf("downloading %s: %w", shown, err)
	}
	return item{host: tmp, name: name, info: fi, remote: true}, nil
}

// digestOf is the digest h computed, in want's algorithm; want itself when nothing
// was to be checked.
func digestOf(want digest.Digest, h hash.Hash) digest.Digest {
	if h == nil {
		return want
	}
	return digest.NewDigest(want.Algorithm(), h)
}

// lastModified parses a Last-Modified header; a missing, unparsable or pre-1970 value
// gives the Unix epoch, where the classic builder's Chtimes clamps a zero time.
func lastModified(h string) time.Time {
	epoch := time.Unix(0, 0)
	if h == "" {
		return epoch
	}
	t, err := http.ParseTime(h)
	if err != nil || t.Before(epoch) {
		return epoch
	}
	return t
}

// filenameForDownload names a download after the last segment of its URL path, or else
// after the Content-Disposition filename; "" when neither gives a usable name.
func filenameForDownload(urlPath, disposition string) string {
	if urlPath != "" && !strings.HasSuffix(urlPath, "/") {
		if name := path.Base(urlPath); usableName(name) {
			return name
		}
	}
	if disposition == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil || params["filename"] == "" || strings.HasSuffix(params["filename"], "/") {
		return ""
	}
	if name := path.Base(filepath.ToSlash(params["filename"])); usableName(name) {
		return name
	}
	return ""
}

// usableName reports whether name can be one path element in the destination.
func usableName(name string) bool {
	return name != "" && name != "." && name != ".." && name != "/"
}
