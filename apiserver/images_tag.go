package apiserver

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/kiln-build/kiln/store"
)

// tagImage answers POST /images/{name}/tag?repo=R&tag=T (docs/server.md, "Images"): the
// CLI sends repo normalized ("docker.io/library/app") and tag defaulting to latest.
// Success is 201 with an empty body.
func (s *Server) tagImage(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	q := r.URL.Query()
	target := q.Get("repo")
	if t := q.Get("tag"); t != "" {
		target += ":" + t
	}
	tag, err := store.ParseTag(target)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := st.Tag(r.Context(), mux.Vars(r)["name"], tag); err != nil {
		writeStoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// deleteImage answers DELETE /images/{name}?force=&noprune= with dockerd's records
// (docs/server.md, "Images"): by name only that reference goes unless it was the last;
// by ID every reference goes, which needs force when they span repositories (409).
func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	q := r.URL.Query()
	var opts []store.DeleteOption
	if boolValue(q.Get("force")) {
		opts = append(opts, store.Force())
	}
	if boolValue(q.Get("noprune")) {
		opts = append(opts, store.NoPrune())
	}
	records, err := st.Delete(r.Context(), mux.Vars(r)["name"], opts...)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	items := deleteItems(records)
	if items == nil {
		items = []deleteItem{}
	}
	replyJSON(w, http.StatusOK, items)
}
