package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/builder"
)

// maxPullReference bounds fromImage, tag and platform: a reference longer than this
// is not one (distribution caps a name at 255 characters and a tag at 128).
const maxPullReference = 1024

// pullImage answers POST /images/create?fromImage=NAME&tag=TAG[&platform=P] (docker
// pull): the image is fetched as a build's FROM fetches it (the server's registry
// options and mirrors) with the request's X-Registry-Auth credentials first, stored
// and tagged, copied into the base cache (as kiln warm would fill it), and reported in
// dockerd's JSON progress stream. Errors before the first byte of the image (a bad
// name, an unknown tag, refused credentials) are HTTP errors with dockerd's statuses;
// later ones are in-stream. fromSrc (docker import) is refused: kiln imports no root
// filesystems. A pull is bounded as a FROM's is (the same registry code, cancelled
// with the client); its query is bounded here.
func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		writeError(w, http.StatusNotImplemented, "kiln does not import root filesystems (docker import): build the image with a Dockerfile (FROM scratch, ADD rootfs.tar /) or docker load an image archive")
		return
	}
	st := s.imageStore(w)
	if st == nil {
		return
	}
	from, tag, platform := q.Get("fromImage"), q.Get("tag"), q.Get("platform")
	if from == "" {
		writeError(w, http.StatusBadRequest, "fromImage is required: the image to pull")
		return
	}
	if len(from) > maxPullReference || len(tag) > maxPullReference || len(platform) > maxPullReference {
		writeError(w, http.StatusBadRequest, "fromImage, tag or platform is too long to be an image reference")
		return
	}
	named, err := pullReference(from, tag)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	kc := s.pushKeychain(r)
	refStr := named.String()
	pulled, err := builder.Pull(r.Context(), refStr, platform,
		builder.WithRegistry(builder.Registry{
			Keychain: kc, PlainHTTP: s.build.PlainHTTP, Insecure: s.build.Insecure,
			Mirrors: s.build.Mirrors, SkipDefaultFallback: s.build.SkipDefaultFallback, Transport: s.build.Transport,
		}))
	if err != nil {
		s.requestLog(r).WithError(err).WithField("image", refStr).Info("pull failed")
		writeError(w, pullErrorStatus(err), s.pullErrorMessage(err, named, kc))
		return
	}
	var before string
	if _, im, err := st.Resolve(refStr); err == nil {
		before = im.ID.String()
	}
	out := newStream(w)
	id := reference.FamiliarName(named)
	if t, ok := named.(reference.Tagged); ok {
		id = t.Tag()
	} else if d, ok := named.(reference.Digested); ok {
		id = d.Digest().String()
	}
	out.Status(id, "Pulling from "+reference.Path(named))
	progress := newPullProgress(out)
	img, ids, err := progress.wrap(pulled.Image, layerDigest)
	if err != nil {
		out.Error(0, err.Error())
		return
	}
	for _, lid := range ids {
		progress.status(lid, "Pulling fs layer")
	}
	var tags []name.Tag
	if t, ok := pulled.Ref.(name.Tag); ok {
		tags = append(tags, t)
	}
	imageID, err := st.Put(r.Context(), img, tags...)
	if err != nil {
		s.requestLog(r).WithError(err).WithField("image", refStr).Info("storing a pulled image failed")
		out.Error(0, err.Error())
		return
	}
	for _, lid := range ids {
		progress.finish(lid, "Pull complete", "Already exists")
	}
	if d, err := name.NewDigest(pulled.Ref.Context().Name() + "@" + pulled.Digest.String()); err == nil {
		if err := st.AddRepoDigest(r.Context(), imageID, d); err != nil {
			out.Error(0, err.Error())
			return
		}
	}
	if dir := s.build.Workspace.BaseCache; dir != "" {
		if err := s.warmBaseCache(r.Context(), dir, imageID.String(), pulled.Ref); err != nil {
			// The image is pulled; only later builds' head start is lost.
			s.requestLog(r).WithError(err).WithField("image", refStr).Warn("pull: storing the image in the base cache")
		}
	}
	out.Status("", "Digest: "+pulled.Digest.String())
	familiar := reference.FamiliarString(named)
	if before == imageID.String() {
		out.Status("", "Status: Image is up to date for "+familiar)
	} else {
		out.Status("", "Status: Downloaded newer image for "+familiar)
	}
}

// warmBaseCache copies the stored image id into the base cache in dir, named as ref,
// so builds FROM it start without a download, as after kiln warm. The store's blobs
// are held meanwhile so a concurrent rmi cannot remove them.
func (s *Server) warmBaseCache(ctx context.Context, dir, id string, ref name.Reference) error {
	release, err := s.store.Hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	img, _, err := s.store.Resolve(id)
	if err != nil {
		return err
	}
	return builder.CacheBaseImage(ctx, dir, img, ref)
}

// pullReference joins fromImage and tag as the CLI splits them: tag is a tag or,
// for NAME@sha256:…, the digest; fromImage may carry either itself. A bare name with
// no tag is dockerd's "every tag" (docker pull -a), which kiln does not offer.
func pullReference(from, tag string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(from)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format: %s: %w", from, err)
	}
	if tag == "" {
		if reference.IsNameOnly(named) {
			return nil, fmt.Errorf("kiln pulls one image at a time: name a tag or digest (docker pull %s:TAG); docker pull --all-tags is not supported", reference.FamiliarName(named))
		}
		return named, nil
	}
	if strings.Contains(tag, ":") {
		d, err := digest.Parse(tag)
		if err != nil {
			return nil, fmt.Errorf("invalid tag or digest %q: %w", tag, err)
		}
		return reference.WithDigest(reference.TrimNamed(named), d)
	}
	return reference.WithTag(reference.TrimNamed(named), tag)
}

// pullErrorStatus maps a registry error to dockerd's status: 404 for an unknown image
// or tag, 500 for everything else (refused credentials included: a 401 would make the
// CLI ask for a password it already sent).
func pullErrorStatus(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// pullErrorMessage words a failed pull as dockerd does: an unknown image is "manifest
// for X not found", a registry that wants credentials and got none "no basic auth
// credentials", anything else as the registry or the network said it.
func (s *Server) pullErrorMessage(err error, named reference.Named, kc authn.Keychain) string {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err.Error()
	}
	switch terr.StatusCode {
	case http.StatusNotFound:
		return fmt.Sprintf("manifest for %s not found: manifest unknown: manifest unknown", named.String())
	case http.StatusUnauthorized:
		if repo, rerr := name.NewRepository(named.Name(), s.nameOptions(named.Name())...); rerr == nil {
			return fmt.Sprintf("pulling %s: %v", reference.FamiliarString(named), pushError(err, kc, repo))
		}
	}
	return err.Error()
}
