package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/gorilla/mux"

	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/store"
)

// pushAux is the aux message after each pushed tag; the CLI reads it for `push -q`
// and content trust.
type pushAux struct {
	Tag    string `json:"Tag"`
	Digest string `json:"Digest"`
	Size   int    `json:"Size"`
}

// pushImage answers POST /images/{name}/push?tag=T (docs/server.md, "Images") from the
// store: the CLI sends the normalized repository and the tag (none for push -a: every
// tag of the repository), with X-Registry-Auth. Everything after the first line is
// in-stream, failures included, as dockerd does: a registry's 401 becomes an
// errorDetail, never an HTTP 401 (which would make the CLI ask for a password).
func (s *Server) pushImage(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	named, err := reference.ParseNormalizedNamed(mux.Vars(r)["name"])
	if err == nil {
		if t := r.URL.Query().Get("tag"); t != "" {
			named, err = reference.WithTag(reference.TrimNamed(named), t)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Keep a concurrent rmi from removing blobs before they are pushed.
	release, err := st.Hold(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer release()
	kc := s.pushKeychain(r)
	out := newStream(w)
	out.Status("", "The push refers to repository ["+named.Name()+"]")
	tags, err := pushTargets(st, named)
	if err != nil {
		out.Error(0, err.Error())
		return
	}
	for _, tag := range tags {
		if err := s.pushTag(r.Context(), st, out, tag, kc); err != nil {
			s.requestLog(r).WithError(err).WithField("tag", tag).Info("push failed")
			out.Error(0, err.Error())
			return
		}
	}
}

// pushTargets lists the normalized tags to push: the one named, or every tag of the
// repository, sorted, when none is.
func pushTargets(st *store.Store, named reference.Named) ([]string, error) {
	//lint:ignore ST1005 dockerd's words, which users grep for
	missing := fmt.Errorf("An image does not exist locally with the tag: %s", reference.FamiliarName(named))
	if tagged, ok := named.(reference.NamedTagged); ok {
		if _, _, err := st.Resolve(tagged.String()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, missing
			}
			return nil, err
		}
		return []string{tagged.String()}, nil
	}
	images, err := st.List()
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, im := range images {
		for _, t := range im.RepoTags {
			if n, err := reference.ParseNormalizedNamed(t); err == nil && n.Name() == named.Name() {
				tags = append(tags, n.String())
			}
		}
	}
	if len(tags) == 0 {
		return nil, missing
	}
	sort.Strings(tags)
	return tags, nil
}

// pushTag pushes one stored tag, reporting each layer by its 12-digit diff ID as
// dockerd does (top layer first), then the digest line and aux, and records the repo
// digest in the store.
func (s *Server) pushTag(ctx context.Context, st *store.Store, out *stream, tagStr string, kc authn.Keychain) error {
	img, im, err := st.Resolve(tagStr)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(tagStr, s.nameOptions(tagStr)...)
	if err != nil {
		return err
	}
	img, done, err := s.compressForOutput(ctx, img)
	if err != nil {
		return err
	}
	defer done()
	progress := newPushProgress(out)
	wrapped, ids, err := progress.wrap(img, layerDiffID)
	if err != nil {
		return err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		progress.status(ids[i], "Preparing")
	}
	digest, err := output.Push(ctx, wrapped, []name.Reference{tag}, s.pushConfig(kc).Options(tag.RegistryStr(), nil)...)
	if err != nil {
		return pushError(err, kc, tag.Context())
	}
	for i := len(ids) - 1; i >= 0; i-- {
		progress.finish(ids[i], "", "Layer already exists")
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	out.Status("", fmt.Sprintf("%s: digest: %s size: %d", tag.TagStr(), digest, len(raw)))
	out.send(message{ProgressDetail: &progressDetail{}, Aux: pushAux{Tag: tag.TagStr(), Digest: digest.String(), Size: len(raw)}})
	ref, err := name.NewDigest(tag.Context().Name() + "@" + digest.String())
	if err != nil {
		return err
	}
	return st.AddRepoDigest(ctx, im.ID, ref)
}

// nameOptions parses references to registries the server reaches over plain HTTP
// (loopback registries always are, by go-containerregistry's rule).
func (s *Server) nameOptions(ref string) []name.Option {
	n, err := reference.ParseNormalizedNamed(ref)
	if err == nil && s.build.PlainHTTP != nil && s.build.PlainHTTP(reference.Domain(n)) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// pushKeychain is the keychain of a push: the request's X-Registry-Auth, then the
// server's own. dockerd treats an undecodable header as no credentials; so does kiln,
// logging why (never the header: it holds a password).
func (s *Server) pushKeychain(r *http.Request) authn.Keychain {
	var kcs []authn.Keychain
	if h := r.Header.Get("X-Registry-Auth"); h != "" {
		kc, err := credentials.FromRegistryAuth(h)
		if err != nil {
			s.requestLog(r).WithError(err).Warn("ignoring the push's registry credentials")
		} else {
			kcs = append(kcs, kc)
		}
	}
	if s.build.Keychain != nil {
		kcs = append(kcs, s.build.Keychain)
	}
	return authn.NewMultiKeychain(kcs...)
}

// pushError words a failed push (or pull) as dockerd does: a registry that wants credentials
// and got none is "no basic auth credentials"; refused credentials are the registry's
// own error ("unauthorized: authentication required").
func pushError(err error, kc authn.Keychain, repo name.Repository) error {
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		return err
	}
	if !hasCredentials(kc, repo) {
		return errors.New("no basic auth credentials")
	}
	if len(terr.Errors) > 0 {
		e := terr.Errors[0]
		return fmt.Errorf("%s: %s", strings.ToLower(string(e.Code)), e.Message)
	}
	return errors.New("unauthorized: authentication required")
}

func hasCredentials(kc authn.Keychain, target authn.Resource) bool {
	auth, err := kc.Resolve(target)
	if err != nil || auth == authn.Anonymous {
		return false
	}
	cfg, err := auth.Authorization()
	return err == nil && cfg != nil && *cfg != (authn.AuthConfig{})
}

// pushedImage is img with its layers replaced by ones that report their upload.
type pushedImage struct {
	v1.Image
	layers []v1.Layer
}

func (p *pushedImage) Layers() ([]v1.Layer, error) { return p.layers, nil }
