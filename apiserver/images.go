package apiserver

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/kiln-build/kiln/store"
)

// imageRoutes registers the /images endpoints, /auth and the prunes (docs/server.md,
// "Images", "docker login", "Prunes"). Names in paths may contain slashes and colons
// ("127.0.0.1:5000/app:1"), so they are matched with {name:.*}; the fixed paths are
// registered first so that, say, /images/json is never read as an image named "json".
func (s *Server) imageRoutes(r *mux.Router) {
	// Build scratch directories older than this handler belong to no running build.
	// File times come from the kernel's coarse clock, which lags time.Now by up to a
	// tick: the margin keeps a build started right after this line from looking old.
	started := time.Now().Add(-time.Second)

	r.HandleFunc("/images/json", s.listImages).Methods(http.MethodGet)
	r.HandleFunc("/images/get", s.saveImages).Methods(http.MethodGet)
	r.HandleFunc("/images/load", s.loadImages).Methods(http.MethodPost)
	r.HandleFunc("/images/prune", s.pruneImages).Methods(http.MethodPost)
	r.HandleFunc("/images/create", s.pullImage).Methods(http.MethodPost)
	r.HandleFunc("/images/{name:.*}/history", s.imageHistory).Methods(http.MethodGet)
	r.HandleFunc("/images/{name:.*}/json", s.inspectImage).Methods(http.MethodGet)
	r.HandleFunc("/images/{name:.*}/get", s.saveImages).Methods(http.MethodGet)
	r.HandleFunc("/images/{name:.*}/tag", s.tagImage).Methods(http.MethodPost)
	r.HandleFunc("/images/{name:.*}/push", s.pushImage).Methods(http.MethodPost)
	r.HandleFunc("/images/{name:.*}", s.deleteImage).Methods(http.MethodDelete)
	r.HandleFunc("/auth", s.login).Methods(http.MethodPost)
	r.HandleFunc("/distribution/{name:.*}/json", s.inspectDistribution).Methods(http.MethodGet)
	r.HandleFunc("/build/prune", func(w http.ResponseWriter, r *http.Request) {
		s.pruneBuildScratch(w, r, started)
	}).Methods(http.MethodPost)
}

// imageStore returns the store, or answers 500 and returns nil when the server has
// none (a server built without WithStore serves builds only to registries).
func (s *Server) imageStore(w http.ResponseWriter) *store.Store {
	if s.store == nil {
		writeError(w, http.StatusInternalServerError, "this kiln server has no image store")
	}
	return s.store
}

// writeStoreError answers a store error with the status dockerd gives it: 404 for a
// missing image, 400 for a malformed reference, 409 for a deletion that needs force.
func writeStoreError(w http.ResponseWriter, err error) {
	writeError(w, storeErrorStatus(err), err.Error())
}

func storeErrorStatus(err error) int {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrInvalidReference):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// deleteItem is one element of DELETE /images/{name}'s answer and of a prune's
// ImagesDeleted, dockerd's ImageDeleteResponseItem.
type deleteItem struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// deleteItems converts store records; none gives nil, which dockerd sends as null.
func deleteItems(records []store.DeleteRecord) []deleteItem {
	var out []deleteItem
	for _, r := range records {
		out = append(out, deleteItem(r))
	}
	return out
}
