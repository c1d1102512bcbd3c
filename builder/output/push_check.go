package output

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CheckPushPermission asks ref's registry whether the credentials and transport that
// Push would use (the same options) may push to ref's repository, without writing
// anything: it starts a blob upload and cancels it, as kaniko and go-containerregistry
// do, because some registries (Docker Hub) grant a push-scoped token they later refuse.
// A build runs it before the first step, so a mistyped registry or a wrong password
// fails in a second rather than after the build. The error names ref and never the
// credentials.
func CheckPushPermission(ctx context.Context, ref name.Reference, opts ...PushOption) error {
	if err := checkPush(ctx, ref, newPushSettings(opts)); err != nil {
		return fmt.Errorf("checking push permission for %s: %w", ref, err)
	}
	return nil
}

func checkPush(ctx context.Context, ref name.Reference, s *pushSettings) error {
	repo := ref.Context()
	auth, err := authn.Resolve(ctx, s.keychain, repo)
	if err != nil {
		return fmt.Errorf("resolving credentials: %w", err)
	}
	rt := s.transportFor(repo.RegistryStr())
	if s.userAgent != "" {
		rt = transport.NewUserAgent(rt, s.userAgent)
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr}
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/uploads/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if loc := resp.Header.Get("Location"); loc != "" {
		cancelUpload(ctx, client, req.URL, loc)
	}
	return nil
}

// cancelUpload deletes the upload session the check opened, so it holds nothing on
// the registry. It is best effort: registries expire abandoned sessions anyway.
func cancelUpload(ctx context.Context, client *http.Client, base *url.URL, loc string) {
	u, err := base.Parse(loc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return
	}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
}
