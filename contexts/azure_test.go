package contexts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/kiln-build/kiln/test/testworld"
)

func TestIsAzureBlobURL(t *testing.T) {
	t.Parallel()
	o := CloudOptions{AzureBlobEndpoints: []string{
		"http://127.0.0.1:10000/devstoreaccount1",
		"http://azurite.test:10000/other/", // a trailing slash is the same endpoint
		"https://blobs.example.com",        // a custom domain: the whole host is one account
		"http://localhost:10000",           // an emulator's bare address: accounts in the path
	}}
	tests := []struct {
		spec string
		want bool
	}{
		{"https://myaccount.blob.core.windows.net/container/path/to/context.tar.gz", true},
		{"https://MyAccount.Blob.Core.Windows.Net/container/context.tar.gz", true},
		{"https://myaccount.blob.core.chinacloudapi.cn/c/ctx.tar.gz", true},
		{"https://myaccount.blob.core.cloudapi.de/c/ctx.tar.gz", true},
		{"https://myaccount.blob.core.usgovcloudapi.net/c/ctx.tar.gz", true},
		{"https://myaccount.privatelink.blob.core.windows.net/c/ctx.tar.gz", true},
		{"https://myaccount.blob.core.windows.net/c/ctx.tar.gz?sv=2021&sig=abc", true},
		{"https://myaccount.blob.core.windows.net:443/c/ctx.tar.gz", true},
		// Claimed, so that Open can say what is wrong rather than "unsupported".
		{"http://myaccount.blob.core.windows.net/c/ctx.tar.gz", true},
		{"https://myaccount.blob.core.windows.net/container", true},
		{"https://myaccount.blob.core.windows.net/", true},
		{"https://blob.core.windows.net/c/ctx.tar.gz", false}, // no account
		{"https://myaccount.blob.core.windows.net.evil.com/c/ctx.tar.gz", false},
		{"https://evil.com/?u=https://a.blob.core.windows.net/c/ctx.tar.gz", false},
		{"https://myaccount.file.core.windows.net/share/ctx.tar.gz", false},
		{"https://example.com/context.tar.gz", false},
		{"s3://bucket/ctx.tar.gz", false},
		{"gs://bucket/ctx.tar.gz", false},
		{"/tmp/dir", false},
		{"myaccount.blob.core.windows.net/c/ctx.tar.gz", false}, // no scheme
		{"http://127.0.0.1:10000/devstoreaccount1/c/ctx.tar.gz", true},
		{"http://127.0.0.1:10000/devstoreaccount1/c", true},
		{"http://127.0.0.1:10000/devstoreaccount1", true},
		{"http://127.0.0.1:10000/devstoreaccount2/c/ctx.tar.gz", false},
		{"http://127.0.0.1:10000/devstoreaccount1x/c/ctx.tar.gz", false},
		{"https://127.0.0.1:10000/devstoreaccount1/c/ctx.tar.gz", false}, // scheme differs
		{"http://127.0.0.1:10001/devstoreaccount1/c/ctx.tar.gz", false},  // port differs
		{"http://AZURITE.test:10000/other/c/ctx.tar.gz", true},
		{"http://localhost:10000/devstoreaccount1/c/ctx.tar.gz", true},
		{"http://localhost:10000", false}, // no account
		{"https://blobs.example.com/c/ctx.tar.gz", true},
		{"https://github.com/kiln-build/kiln.git", false},
	}
	for _, tt := range tests {
		if got := o.IsAzureBlobURL(tt.spec); got != tt.want {
			t.Errorf("IsAzureBlobURL(%q) = %v, want %v", tt.spec, got, tt.want)
		}
	}
	if (CloudOptions{}).IsAzureBlobURL("http://127.0.0.1:10000/devstoreaccount1/c/ctx.tar.gz") {
		t.Error("an Azurite URL is an Azure Blob context without AzureBlobEndpoints")
	}
}

// TestOpenAzureBlobGit checks that a .git URL on a blob host stays a git context:
// Open asks IsGitURL first.
func TestOpenAzureBlobGit(t *testing.T) {
	t.Parallel()
	spec := "https://myaccount.blob.core.windows.net/c/repo.git"
	if !IsGitURL(spec) {
		t.Fatalf("IsGitURL(%q) = false", spec)
	}
}

func TestAzureBlobRef(t *testing.T) {
	t.Parallel()
	o := CloudOptions{AzureBlobEndpoints: []string{"http://127.0.0.1:10000/devstoreaccount1/", "http://[::1]:10000", "https://blobs.example.com"}}
	tests := []struct {
		spec                     string
		account, container, blob string
		display                  string
		service                  string
	}{
		{
			spec:    "https://myaccount.blob.core.windows.net/ctx/path/to/context.tar.gz",
			account: "myaccount", container: "ctx", blob: "path/to/context.tar.gz",
			display: "https://myaccount.blob.core.windows.net/ctx/path/to/context.tar.gz",
			service: "https://myaccount.blob.core.windows.net",
		},
		{
			spec:    "https://myaccount.blob.core.windows.net/ctx/with%20space.tar?sv=2021-08-06&sig=c2VjcmV0%2Bc2ln&sp=r",
			account: "myaccount", container: "ctx", blob: "with space.tar",
			display: "https://myaccount.blob.core.windows.net/ctx/with%20space.tar?sv=2021-08-06&sig=REDACTED&sp=r",
			service: "https://myaccount.blob.core.windows.net",
		},
		{
			spec:    "http://127.0.0.1:10000/devstoreaccount1/ctx/a/b.tgz",
			account: "devstoreaccount1", container: "ctx", blob: "a/b.tgz",
			display: "http://127.0.0.1:10000/devstoreaccount1/ctx/a/b.tgz",
			service: "http://127.0.0.1:10000/devstoreaccount1",
		},
		{
			spec:    "http://[::1]:10000/acct2/ctx/b.tgz?SIG=x",
			account: "acct2", container: "ctx", blob: "b.tgz",
			display: "http://[::1]:10000/acct2/ctx/b.tgz?SIG=REDACTED",
			service: "http://[::1]:10000/acct2",
		},
		{
			spec:    "https://blobs.example.com/ctx/c.tgz",
			account: "blobs", container: "ctx", blob: "c.tgz",
			display: "https://blobs.example.com/ctx/c.tgz",
			service: "https://blobs.example.com",
		},
	}
	for _, tt := range tests {
		ref, ok := o.matchAzureBlob(tt.spec)
		if !ok {
			t.Errorf("matchAzureBlob(%q): no match", tt.spec)
			continue
		}
		got := [...]string{ref.account, ref.container, ref.blob, ref.display, ref.service}
		want := [...]string{tt.account, tt.container, tt.blob, tt.display, tt.service}
		if got != want {
			t.Errorf("matchAzureBlob(%q) = account, container, blob, display, service %q; want %q", tt.spec, got, want)
		}
	}
}

// TestOpenAzureBlobBadURL checks the URLs refused before anything is sent.
func TestOpenAzureBlobBadURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		want string
	}{
		{"http://myaccount.blob.core.windows.net/c/ctx.tar.gz", "must use https"},
		{"https://myaccount.blob.core.windows.net/ctx", `names container "ctx" but no blob`},
		{"https://myaccount.blob.core.windows.net/ctx/", `names container "ctx" but no blob`},
		{"https://myaccount.blob.core.windows.net/ctx/dir/", `names container "ctx" but no blob`},
		{"https://myaccount.blob.core.windows.net/", "names no container"},
		{"https://myaccount.blob.core.windows.net/c/ctx.tar.gz#main", "#fragment is not supported"},
	}
	for _, tt := range tests {
		c, err := Open(context.Background(), tt.spec, WithTempDir(t.TempDir()),
			WithCloud(CloudOptions{AzureAccessKey: testworld.AzuriteKey}))
		if err == nil {
			c.Close()
			t.Errorf("Open(%q) succeeded", tt.spec)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), strings.TrimSuffix(tt.spec, "#main")) {
			t.Errorf("Open(%q) = %v; want an error naming the URL and saying %q", tt.spec, err, tt.want)
		}
		if strings.Contains(err.Error(), testworld.AzuriteKey) {
			t.Errorf("Open(%q) error carries the key: %v", tt.spec, err)
		}
	}
}

// azureTarGz is a gzipped tar of files, each 0644.
func azureTarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// azureSAS signs a read-only SAS URL for a blob with the shared key.
func azureSAS(t *testing.T, az *testworld.AzuriteServer, blobURL string) string {
	t.Helper()
	cred, err := blob.NewSharedKeyCredential(az.Account, az.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := blob.NewClientWithSharedKeyCredential(blobURL, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.GetSASURL(sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOpenAzureBlob(t *testing.T) {
	t.Parallel()
	az := testworld.Azurite(t)
	files := map[string]string{"Dockerfile": "FROM scratch\nCOPY . /\n", "dir/a.txt": "hello azure\n"}
	archive := azureTarGz(t, files)
	private := az.Put(t, "private", "path/to/context.tar.gz", archive)
	az.CreatePublicContainer(t, "public")
	public := az.Put(t, "public", "context.tar.gz", archive)
	big := az.Put(t, "private", "big.tar.gz", azureTarGz(t, map[string]string{"big": strings.Repeat("x", 64<<10)}))
	sasURL := azureSAS(t, az, private)
	sasMissing := azureSAS(t, az, az.BlobURL("private", "missing.tar.gz"))
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="

	tests := []struct {
		name    string
		spec    string
		key     string
		opts    []OpenOption
		wantErr string // "" for success
		is      error  // the error must match with errors.Is
		status  int    // the HTTP status of the SDK's error, kept reachable with errors.As
	}{
		{name: "shared key", spec: private, key: az.Key},
		{name: "public anonymous", spec: public},
		{name: "public with key", spec: public, key: az.Key},
		{name: "SAS anonymous", spec: sasURL},
		{name: "private anonymous", spec: private, wantErr: "AZURE_STORAGE_ACCESS_KEY"},
		{name: "wrong key", spec: private, key: wrongKey, wantErr: "access denied", status: 403},
		{name: "key not base64", spec: private, key: "not base64 !!!", wantErr: "not valid base64"},
		{name: "missing blob", spec: az.BlobURL("private", "nope.tar.gz"), key: az.Key, wantErr: `blob "nope.tar.gz" not found in container "private"`},
		{name: "missing container", spec: az.BlobURL("nocontainer", "ctx.tar.gz"), key: az.Key, wantErr: `container "nocontainer" not found`, status: 404},
		{name: "SAS missing blob", spec: sasMissing, wantErr: "not found"},
		{name: "container only", spec: az.Endpoint + "/private", key: az.Key, wantErr: "no blob"},
		{name: "over the limit", spec: big, key: az.Key, opts: []OpenOption{WithArchiveOptions(WithMaxBytes(1024))}, is: ErrLimitExceeded},
		{name: "under the limit", spec: private, key: az.Key, opts: []OpenOption{WithArchiveOptions(WithMaxBytes(1024))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := append([]OpenOption{
				WithTempDir(t.TempDir()),
				WithCloud(CloudOptions{AzureBlobEndpoints: []string{az.Endpoint}, AzureAccessKey: tt.key}),
			}, tt.opts...)
			c, err := Open(context.Background(), tt.spec, opts...)
			if tt.wantErr == "" && tt.is == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer c.Close()
				for name, want := range files {
					got, err := os.ReadFile(filepath.Join(c.Dir, name))
					if err != nil || string(got) != want {
						t.Errorf("%s = %q, %v; want %q", name, got, err, want)
					}
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			var re *azcore.ResponseError
			if tt.status != 0 && (!errors.As(err, &re) || re.StatusCode != tt.status) {
				t.Errorf("error %v does not wrap an *azcore.ResponseError with status %d", err, tt.status)
			}
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not say %q", msg, tt.wantErr)
			}
			ref, _ := CloudOptions{AzureBlobEndpoints: []string{az.Endpoint}}.matchAzureBlob(tt.spec)
			if !strings.Contains(msg, ref.display) {
				t.Errorf("error %q does not name the URL %s", msg, ref.display)
			}
			for _, secret := range []string{tt.key, ref.secret} {
				if secret != "" && strings.Contains(msg, secret) {
					t.Errorf("error %q carries a secret", msg)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

// TestAzureBlobExplain covers the answers real Azure gives that Azurite does not
// (an anonymous read of a private container is a 404 there).
func TestAzureBlobExplain(t *testing.T) {
	t.Parallel()
	ref, _ := CloudOptions{}.matchAzureBlob("https://acct.blob.core.windows.net/c/ctx.tar.gz")
	tests := []struct {
		status int
		code   string
		keyed  bool
		want   string
	}{
		{404, "BlobNotFound", true, `blob "ctx.tar.gz" not found in container "c"`},
		{404, "ContainerNotFound", true, `container "c" not found in account "acct"`},
		{404, "ResourceNotFound", false, "not found, or not public: set the storage account key (AZURE_STORAGE_ACCESS_KEY)"},
		{404, "ResourceNotFound", true, ": not found"},
		{403, "AuthenticationFailed", true, `access denied (AuthenticationFailed): check the storage account key (AZURE_STORAGE_ACCESS_KEY) for account "acct"`},
		{403, "AuthorizationPermissionMismatch", false, "access denied (AuthorizationPermissionMismatch): set the storage account key"},
		{401, "NoAuthenticationInformation", false, "access denied (NoAuthenticationInformation)"},
		{409, "BlobArchived", true, "download failed: HTTP 409 BlobArchived"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, ref.blobURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{
			StatusCode: tt.status, Status: http.StatusText(tt.status), Request: req,
			Header: http.Header{"X-Ms-Error-Code": {tt.code}}, Body: io.NopCloser(strings.NewReader("")),
		}
		err = ref.explain(runtime.NewResponseError(resp), tt.keyed)
		want := "context https://acct.blob.core.windows.net/c/ctx.tar.gz"
		if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, tt.want) {
			t.Errorf("explain(%d %s, keyed %v) = %q; want %q", tt.status, tt.code, tt.keyed, msg, tt.want)
		}
	}
}

// TestAzureBlobRedact checks that a SAS signature, as the URL spells it or decoded,
// never reaches an error message, including errors met mid-stream.
func TestAzureBlobRedact(t *testing.T) {
	t.Parallel()
	spec := "https://acct.blob.core.windows.net/c/ctx.tar.gz?sv=1&sig=a%2Bb%3D"
	ref, _ := CloudOptions{}.matchAzureBlob(spec)
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("Get " + spec + ": connection reset"), "Get https://acct.blob.core.windows.net/c/ctx.tar.gz?sv=1&sig=REDACTED: connection reset"},
		{errors.New("signature a+b= rejected"), "signature REDACTED rejected"},
		{errors.New("unrelated"), "unrelated"},
	}
	for _, tt := range tests {
		rr := &redactingReader{r: iotest.ErrReader(tt.err), ref: ref}
		_, err := rr.Read(make([]byte, 1))
		if err.Error() != tt.want {
			t.Errorf("Read error = %q, want %q", err, tt.want)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("Read error %v does not wrap %v", err, tt.err)
		}
	}
	rr := &redactingReader{r: strings.NewReader(""), ref: ref}
	if _, err := rr.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read at the end = %v, want io.EOF itself", err)
	}
}

// azureSuiteSource is the Azure Blob entry of the source conformance suite: the suite
// tree as a tar.gz blob in a private container of a fresh Azurite, read with the key.
func azureSuiteSource(t *testing.T) (string, []OpenOption) {
	az := testworld.Azurite(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	writeSuiteTar(t, zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	spec := az.Put(t, "ctx", "suite/context.tar.gz", buf.Bytes())
	return spec, []OpenOption{WithCloud(CloudOptions{AzureBlobEndpoints: []string{az.Endpoint}, AzureAccessKey: az.Key})}
}
