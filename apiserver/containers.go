package apiserver

import (
	"net/http"

	"github.com/gorilla/mux"
)

// noContainers is the sentence every request to create or run a container gets: kiln
// builds images and has no runtime. The CLI prints it after "Error response from
// daemon:", so it says what to do instead.
const noContainers = "kiln builds images and runs no containers: docker run, create, exec and start are not available; build with docker build and run the image elsewhere"

// noVolumesOrNetworks is the sentence for creating a volume or a network.
const noVolumesOrNetworks = "kiln builds images and runs no containers, so it has no volumes or networks to create"

// containerRoutes makes kiln answer the container, volume and network endpoints as a
// daemon with none of them would: lists are empty, prunes remove nothing, inspecting
// or acting on one is "No such …" (with why), and creating one is 501 with a sentence
// saying kiln runs no containers. Without them the CLI would print "page not found",
// which says nothing (`docker ps`, `docker run`, `docker system prune`,
// `docker volume ls`, `docker network ls`).
func (s *Server) containerRoutes(r *mux.Router) {
	r.HandleFunc("/containers/json", func(w http.ResponseWriter, _ *http.Request) {
		replyJSON(w, http.StatusOK, []struct{}{})
	}).Methods(http.MethodGet)
	r.HandleFunc("/containers/create", notImplemented(noContainers)).Methods(http.MethodPost)
	r.HandleFunc("/containers/prune", func(w http.ResponseWriter, _ *http.Request) {
		replyJSON(w, http.StatusOK, struct {
			ContainersDeleted []string `json:"ContainersDeleted"`
			SpaceReclaimed    int64    `json:"SpaceReclaimed"`
		}{})
	}).Methods(http.MethodPost)
	r.HandleFunc("/containers/{id}", noSuchContainer).Methods(http.MethodDelete)
	r.PathPrefix("/containers/{id}/").HandlerFunc(noSuchContainer)
	r.PathPrefix("/exec/{id}/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "No such exec instance: "+mux.Vars(r)["id"]+" ("+noContainers+")")
	})

	r.HandleFunc("/volumes", func(w http.ResponseWriter, _ *http.Request) {
		replyJSON(w, http.StatusOK, struct {
			Volumes  []struct{} `json:"Volumes"`
			Warnings []string   `json:"Warnings"`
		}{Volumes: []struct{}{}})
	}).Methods(http.MethodGet)
	r.HandleFunc("/volumes/create", notImplemented(noVolumesOrNetworks)).Methods(http.MethodPost)
	r.HandleFunc("/volumes/prune", func(w http.ResponseWriter, _ *http.Request) {
		replyJSON(w, http.StatusOK, struct {
			VolumesDeleted []string `json:"VolumesDeleted"`
			SpaceReclaimed int64    `json:"SpaceReclaimed"`
		}{})
	}).Methods(http.MethodPost)
	r.HandleFunc("/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		// dockerd's words for a volume it does not have.
		writeError(w, http.StatusNotFound, "get "+mux.Vars(r)["name"]+": no such volume")
	}).Methods(http.MethodGet, http.MethodDelete, http.MethodPut)

	r.HandleFunc("/networks", func(w http.ResponseWriter, _ *http.Request) {
		replyJSON(w, http.StatusOK, []struct{}{})
	}).Methods(http.MethodGet)
	r.HandleFunc("/networks/create", notImplemented(noVolumesOrNetworks)).Methods(http.MethodPost)
	r.HandleFunc("/networks/prune", func(w http.ResponseWriter, _ *http.Request) {
		replyJSON(w, http.StatusOK, struct {
			NetworksDeleted []string `json:"NetworksDeleted"`
		}{})
	}).Methods(http.MethodPost)
	r.PathPrefix("/networks/{id}").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "network "+mux.Vars(r)["id"]+" not found")
	})
}

// noSuchContainer answers a request about one container: there are none.
func noSuchContainer(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "No such container: "+mux.Vars(r)["id"]+" ("+noContainers+")")
}

// notImplemented answers 501 with msg.
func notImplemented(msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotImplemented, msg)
	}
}
