package testworld

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// AzuriteAccount and AzuriteKey are the storage account and key every Azurite accepts
// out of the box (Microsoft's documented development-storage credentials).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteStartTimeout bounds how long a fresh Azurite (a Node process) may take to
// answer.
const azuriteStartTimeout = 30 * time.Second

// AzuriteServer is Azurite's blob service, from npm, which a test started on loopback.
type AzuriteServer struct {
	// Endpoint is the account's blob service URL, path-style as Azurite serves it:
	// http://127.0.0.1:PORT/devstoreaccount1 (what CloudOptions.AzureBlobEndpoints
	// takes). Blobs are Endpoint/CONTAINER/BLOB.
	Endpoint string
	// Account and Key are the shared-key credentials Azurite accepts: AzuriteAccount
	// and AzuriteKey.
	Account, Key string
	client       *azblob.Client
}

// Azurite starts azurite-blob on a free loopback port with its data in a t.TempDir(),
// and stops it (killing the process group it started) when the test ends. It is looked
// up under $KILN_WORLD/npm/node_modules/.bin (default /var/tmp/kiln-world), where
// world.sh installs it, then on PATH; without it the test skips (fails when
// KILN_TEST_WORLD_REQUIRED=1).
func Azurite(t testing.TB) *AzuriteServer {
	t.Helper()
	if testing.Short() {
		t.Skip("testworld: Azurite tests do not run with -short")
		return nil
	}
	bin, err := findWorldBinary("npm/node_modules/.bin", "azurite-blob")
	if err != nil {
		unavailable(t, required(), "testworld: %v, or npm install azurite", err)
		return nil
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount)
	// --disableTelemetry: the test world never talks to anything off this machine.
	// --skipApiVersionCheck: the Go SDK may be newer than this Azurite.
	// Ready is any answer to the container listing: an unsigned request gets 403.
	startEmulator(t, "azurite-blob", bin, []string{"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--location", t.TempDir(), "--silent", "--skipApiVersionCheck", "--disableTelemetry"},
		httpProbe(endpoint+"?comp=list", anyStatus), azuriteStartTimeout)
	cred, err := azblob.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		t.Fatalf("testworld: %v", err)
	}
	client, err := azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, nil)
	if err != nil {
		t.Fatalf("testworld: Azure Blob client for %s: %v", endpoint, err)
	}
	return &AzuriteServer{Endpoint: endpoint, Account: AzuriteAccount, Key: AzuriteKey, client: client}
}

// CreateContainer creates a private container (one that only shared-key requests may
// read); the test fails when Azurite refuses, or when it already exists.
func (a *AzuriteServer) CreateContainer(t testing.TB, name string) {
	t.Helper()
	a.createContainer(t, name, nil)
}

// CreatePublicContainer creates a container whose blobs anyone may read without
// credentials.
func (a *AzuriteServer) CreatePublicContainer(t testing.TB, name string) {
	t.Helper()
	a.createContainer(t, name, &azblob.CreateContainerOptions{Access: to.Ptr(container.PublicAccessTypeBlob)})
}

func (a *AzuriteServer) createContainer(t testing.TB, name string, opts *azblob.CreateContainerOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := a.client.CreateContainer(ctx, name, opts); err != nil {
		t.Fatalf("testworld: creating container %s at %s: %v", name, a.Endpoint, err)
	}
}

// Put uploads data as the block blob CONTAINER/NAME, creating the container (private)
// if it does not exist yet, and returns the blob's URL.
func (a *AzuriteServer) Put(t testing.TB, containerName, name string, data []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := a.client.CreateContainer(ctx, containerName, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("testworld: creating container %s at %s: %v", containerName, a.Endpoint, err)
	}
	if _, err := a.client.UploadBuffer(ctx, containerName, name, data, nil); err != nil {
		t.Fatalf("testworld: uploading %s/%s to %s: %v", containerName, name, a.Endpoint, err)
	}
	return a.BlobURL(containerName, name)
}

// BlobURL is the URL of CONTAINER/NAME on this server, whether or not it exists.
func (a *AzuriteServer) BlobURL(containerName, name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return a.Endpoint + "/" + url.PathEscape(containerName) + "/" + strings.Join(parts, "/")
}
