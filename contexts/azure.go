package contexts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// azureBlobRef is an Azure Blob context URL taken apart.
type azureBlobRef struct {
	blobURL   string // what the SDK downloads: the URL as given
	display   string // the URL for messages, with a SAS signature redacted
	secret    string // the SAS signature, which no message may carry; "" if none
	service   string // the blob service's root URL, for messages
	secure    bool   // https
	azureHost bool   // an Azure cloud host, which must be reached over https
	account   string // the storage account the shared key belongs to
	container string
	blob      string
}

// azureBlobHostSuffixes are the blob service domains of Azure's public and
// sovereign clouds: the hosts kaniko takes for Azure Blob contexts.
func azureBlobHostSuffixes() []string {
	return []string{
		".blob.core.windows.net",       // AzureCloud
		".blob.core.chinacloudapi.cn",  // AzureChinaCloud
		".blob.core.cloudapi.de",       // AzureGermanCloud
		".blob.core.usgovcloudapi.net", // AzureUSGovernment
	}
}

// IsAzureBlobURL reports whether spec names an Azure Blob context: an http(s) URL
// on ACCOUNT.blob.core.windows.net or a sovereign cloud's blob domain (as kaniko
// recognises), or under one of AzureBlobEndpoints. A URL that names only an account
// or a container counts, so that Open reports what is missing instead of "unsupported
// scheme".
func (o CloudOptions) IsAzureBlobURL(spec string) bool {
	_, ok := o.matchAzureBlob(spec)
	return ok
}

// matchAzureBlob finds the blob service spec is on, and returns its account and the
// path inside the service (container/blob), still escaped.
func (o CloudOptions) matchAzureBlob(spec string) (ref azureBlobRef, ok bool) {
	u, err := url.Parse(spec)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return azureBlobRef{}, false
	}
	for _, e := range o.AzureBlobEndpoints {
		if account, rest, ok := underEndpoint(u, e); ok {
			// rest is the tail of u's path; what precedes it is the account's service
			service := u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), rest)
			return newAzureBlobRef(u, account, rest, service, false), true
		}
	}
	host := strings.ToLower(u.Hostname())
	for _, suffix := range azureBlobHostSuffixes() {
		if !strings.HasSuffix(host, suffix) {
			continue
		}
		// kaniko takes the account from the first label too, which also covers
		// ACCOUNT.privatelink.blob.core.windows.net.
		if account, _, _ := strings.Cut(strings.TrimSuffix(host, suffix), "."); account != "" {
			return newAzureBlobRef(u, account, u.EscapedPath(), u.Scheme+"://"+u.Host, true), true
		}
	}
	return azureBlobRef{}, false
}

// underEndpoint reports whether u lies under the blob service endpoint e, written
// path-style as Azurite serves it (http://127.0.0.1:10000/ACCOUNT): the account is
// the endpoint's last path element; when the endpoint has no path, the first
// element of u's path for an IP address or localhost (an emulator), and the first
// label of the host otherwise (a custom domain serving one account). rest is u's
// escaped path below the account.
func underEndpoint(u *url.URL, endpoint string) (account, rest string, ok bool) {
	e, err := url.Parse(endpoint)
	if err != nil || !strings.EqualFold(e.Scheme, u.Scheme) || !strings.EqualFold(e.Host, u.Host) {
		return "", "", false
	}
	base := strings.TrimRight(e.EscapedPath(), "/")
	path := u.EscapedPath()
	if path != base && !strings.HasPrefix(path, base+"/") {
		return "", "", false
	}
	rest = strings.TrimPrefix(path, base)
	switch {
	case base != "":
		account = base[strings.LastIndex(base, "/")+1:]
	case net.ParseIP(e.Hostname()) != nil || strings.EqualFold(e.Hostname(), "localhost"):
		// An emulator's bare address: the URL's first path element is the account.
		account, rest, _ = strings.Cut(strings.TrimPrefix(rest, "/"), "/")
		account, _ = url.PathUnescape(account)
		rest = "/" + rest
	default:
		account, _, _ = strings.Cut(e.Hostname(), ".")
	}
	return account, rest, account != ""
}

// newAzureBlobRef splits the escaped path /CONTAINER/BLOB below the service.
func newAzureBlobRef(u *url.URL, account, rest, service string, azureHost bool) azureBlobRef {
	ref := azureBlobRef{
		blobURL:   u.String(),
		service:   service,
		secure:    u.Scheme == "https",
		azureHost: azureHost,
		account:   account,
	}
	container, blobPath, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	ref.container, _ = url.PathUnescape(container)
	ref.blob, _ = url.PathUnescape(blobPath)

	shown := *u
	params := strings.Split(u.RawQuery, "&")
	for i, p := range params {
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(k, "sig") && v != "" {
			ref.secret = v
			params[i] = k + "=REDACTED"
		}
	}
	shown.RawQuery = strings.Join(params, "&")
	ref.display = shown.Redacted()
	return ref
}

// fromAzureBlob downloads an Azure Blob archive and extracts it into dir. With
// AzureAccessKey it signs requests with the account's shared key, as kaniko does
// (kaniko refuses to start without AZURE_STORAGE_ACCESS_KEY); without one it reads
// the blob anonymously, which serves public containers and SAS URLs
// (?sv=…&sig=…; a SAS URL is read with its signature alone, key or no key).
// Microsoft Entra ID credentials are not consulted.
func fromAzureBlob(ctx context.Context, spec, dir string, s openSettings) (*Context, error) {
	ref, ok := s.cloud.matchAzureBlob(spec)
	if !ok {
		return nil, fmt.Errorf("context %q: not an Azure Blob URL", spec)
	}
	if err := ref.validate(); err != nil {
		return nil, err
	}
	key := s.cloud.AzureAccessKey
	if ref.secret != "" {
		// A SAS URL carries its own authorization, which a shared-key signature
		// would contradict.
		key = ""
	}
	client, err := ref.client(key, &blob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: s.net.Client()}})
	if err != nil {
		return nil, err
	}
	resp, err := client.DownloadStream(ctx, nil)
	if err != nil {
		return nil, ref.explain(err, key != "")
	}
	body := resp.NewRetryReader(ctx, nil)
	defer body.Close()
	c, err := objectContext(ctx, ref.display, &redactingReader{r: body, ref: ref}, dir, s)
	if err != nil {
		return nil, ref.redact(err)
	}
	return c, nil
}

// validate rejects URLs that cannot name a blob, before anything is sent.
func (r azureBlobRef) validate() error {
	u, _ := url.Parse(r.blobURL)
	switch {
	case r.azureHost && !r.secure:
		return fmt.Errorf("context %s: Azure Blob contexts must use https", r.display)
	case u.Fragment != "":
		return fmt.Errorf("context %s: a #fragment is not supported in an Azure Blob URL (escape # in a blob name as %%23)", r.display)
	case r.container == "":
		return fmt.Errorf("context %s: the URL names no container; want %s", r.display, r.wantForm())
	case r.blob == "" || strings.HasSuffix(r.blob, "/"):
		return fmt.Errorf("context %s: the URL names container %q but no blob; want %s", r.display, r.container, r.wantForm())
	}
	return nil
}

// wantForm spells the expected URL shape for this service.
func (r azureBlobRef) wantForm() string {
	return r.service + "/CONTAINER/PATH/TO/CONTEXT.tar.gz"
}

// client makes the blob client: signed with the shared key when there is one,
// anonymous otherwise.
func (r azureBlobRef) client(key string, opts *blob.ClientOptions) (*blob.Client, error) {
	if key == "" {
		c, err := blob.NewClientWithNoCredential(r.blobURL, opts)
		if err != nil {
			return nil, fmt.Errorf("context %s: %w", r.display, r.redact(err))
		}
		return c, nil
	}
	// The SDK's own error here says only that the key is not base64; never echo it.
	cred, err := blob.NewSharedKeyCredential(r.account, key)
	if err != nil {
		return nil, fmt.Errorf("context %s: the storage account key for account %q is not valid base64: %w", r.display, r.account, err)
	}
	c, err := blob.NewClientWithSharedKeyCredential(r.blobURL, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", r.display, r.redact(err))
	}
	return c, nil
}

// explain turns a failed download into one line naming the URL and the likely cause,
// keeping the SDK's error (whose text spans a dozen lines) reachable with errors.As.
func (r azureBlobRef) explain(err error, keyed bool) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("context %s: %w", r.display, r.redact(err))
	}
	var msg string
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		msg = fmt.Sprintf("blob %q not found in container %q", r.blob, r.container)
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		msg = fmt.Sprintf("container %q not found in account %q", r.container, r.account)
	case re.StatusCode == http.StatusNotFound && !keyed:
		// Azure answers anonymous reads of private containers with 404.
		msg = "not found, or not public: set the storage account key (AZURE_STORAGE_ACCESS_KEY) to read a private container"
	case re.StatusCode == http.StatusNotFound:
		msg = "not found"
	case (re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden) && keyed:
		msg = fmt.Sprintf("access denied (%s): check the storage account key (AZURE_STORAGE_ACCESS_KEY) for account %q", re.ErrorCode, r.account)
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		msg = fmt.Sprintf("access denied (%s): set the storage account key (AZURE_STORAGE_ACCESS_KEY), or use a SAS URL", re.ErrorCode)
	default:
		msg = fmt.Sprintf("download failed: HTTP %d %s", re.StatusCode, re.ErrorCode)
	}
	return &azureBlobError{msg: "context " + r.display + ": " + msg, err: err}
}

// redact hides a SAS signature in err's message: transport errors quote the full
// request URL.
func (r azureBlobRef) redact(err error) error {
	if err == nil || r.secret == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), r.secret, "REDACTED")
	if plain, perr := url.QueryUnescape(r.secret); perr == nil {
		msg = strings.ReplaceAll(msg, plain, "REDACTED")
	}
	if msg == err.Error() {
		return err
	}
	return &azureBlobError{msg: msg, err: err}
}

// azureBlobError is a one-line message in front of the SDK's error, which stays
// reachable through Unwrap but is not printed.
type azureBlobError struct {
	msg string
	err error
}

func (e *azureBlobError) Error() string { return e.msg }
func (e *azureBlobError) Unwrap() error { return e.err }

// redactingReader redacts a SAS signature from errors met while streaming, when the
// retry reader re-issues the request and fails.
type redactingReader struct {
	r   io.Reader
	ref azureBlobRef
}

// Read passes io.EOF through unchanged: redact returns errors it has nothing to hide
// in as they are.
func (rr *redactingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	return n, rr.ref.redact(err)
}
