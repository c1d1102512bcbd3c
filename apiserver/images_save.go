package apiserver

import (
	"net/http"
	"sort"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gorilla/mux"

	"github.com/kiln-build/kiln/store"
)

// saveImages answers GET /images/get?names=A&names=B and GET /images/{name}/get with a
// docker-archive (docker save's format, which `docker load` reads), streamed: layers go
// from the store to the client without being held in memory.
//
// Names are chosen as dockerd chooses them: a tag saves that tag; a repository without
// a tag saves every tag of that repository; an ID or digest saves the image with no tag.
func (s *Server) saveImages(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	names := r.URL.Query()["names"]
	if n, ok := mux.Vars(r)["name"]; ok {
		names = []string{n}
	}
	if len(names) == 0 {
		writeError(w, http.StatusBadRequest, "no image to save: give names=")
		return
	}
	// Keep a concurrent rmi from removing blobs before they are sent.
	release, err := st.Hold(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer release()
	sel := saveSelection{st: st, byID: map[v1.Hash]*saveEntry{}}
	for _, n := range names {
		if err := sel.add(n); err != nil {
			writeStoreError(w, err)
			return
		}
	}
	// The store holds layers as built: plain tars are compressed (from the memo when
	// an earlier push or save did it) so the archive is what it always was.
	for _, e := range sel.entries {
		img, done, err := s.compressForOutput(r.Context(), e.img)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		defer done()
		e.img = img
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := writeDockerArchive(w, sel.entries); err != nil {
		// The archive is half sent: cut the connection so the client sees a truncated
		// transfer rather than a well-formed, incomplete tar.
		s.requestLog(r).WithError(err).Warn("docker save: writing the archive failed")
		panic(http.ErrAbortHandler)
	}
}

// saveSelection collects the images of one save, each once, in the order first named,
// with its tags in the order named: that is the order docker load reports them in.
type saveSelection struct {
	st      *store.Store
	entries []*saveEntry
	byID    map[v1.Hash]*saveEntry
}

// saveEntry is one image of the archive and the familiar tags it is saved under.
type saveEntry struct {
	img  v1.Image
	tags []string
}

func (sel *saveSelection) add(ref string) error {
	if named, err := reference.ParseNormalizedNamed(ref); err == nil && reference.IsNameOnly(named) {
		n, err := sel.addRepository(named.Name())
		if err != nil || n > 0 {
			return err
		}
	}
	img, im, err := sel.st.Resolve(ref)
	if err != nil {
		return err
	}
	e := sel.entry(im.ID, img)
	named, err := reference.ParseNormalizedNamed(ref)
	if tagged, ok := named.(reference.NamedTagged); err == nil && ok && !isDigestRef(named) {
		e.addTag(reference.FamiliarString(tagged))
	}
	// By ID or digest the image goes in untagged (unless also named by a tag).
	return nil
}

// addRepository adds every tag of repo and returns how many there were.
func (sel *saveSelection) addRepository(repo string) (int, error) {
	images, err := sel.st.List()
	if err != nil {
		return 0, err
	}
	var tags []string
	for _, im := range images {
		for _, t := range im.RepoTags {
			if r, err := store.NormalizedName(t); err == nil && r == repo {
				tags = append(tags, t)
			}
		}
	}
	sort.Strings(tags)
	for _, t := range tags {
		img, im, err := sel.st.Resolve(t)
		if err != nil {
			return 0, err
		}
		sel.entry(im.ID, img).addTag(t)
	}
	return len(tags), nil
}

// entry returns the entry of the image id, adding it on first sight.
func (sel *saveSelection) entry(id v1.Hash, img v1.Image) *saveEntry {
	if e, ok := sel.byID[id]; ok {
		return e
	}
	e := &saveEntry{img: img}
	sel.byID[id] = e
	sel.entries = append(sel.entries, e)
	return e
}

func (e *saveEntry) addTag(t string) {
	for _, have := range e.tags {
		if have == t {
			return
		}
	}
	e.tags = append(e.tags, t)
}

func isDigestRef(n reference.Named) bool {
	_, ok := n.(reference.Digested)
	return ok
}
