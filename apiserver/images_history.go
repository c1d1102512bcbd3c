package apiserver

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
)

// historyItem is one element of GET /images/{name}/history, dockerd 20.10's
// HistoryResponseItem in its (alphabetical) field order.
type historyItem struct {
	Comment   string   `json:"Comment"`
	Created   int64    `json:"Created"`
	CreatedBy string   `json:"CreatedBy"`
	ID        string   `json:"Id"`
	Size      int64    `json:"Size"`
	Tags      []string `json:"Tags"`
}

// imageHistory answers GET /images/{name}/history (docker history) from the image
// config's history, newest first, as dockerd does: each entry that made a layer gets
// that layer's size (its files' sizes), the others 0. The newest entry carries the
// image's ID and tags; dockerd fills older ones from the parent chain its classic
// builder records, which a pulled, loaded or kiln-built image does not have, so they
// are "<missing>" there as here.
func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	ref := mux.Vars(r)["name"]
	img, im, err := st.Resolve(ref)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("image %s: reading its config: %v", im.ID, err))
		return
	}
	out := make([]historyItem, len(cfg.History))
	layer := 0
	for i, h := range cfg.History {
		item := historyItem{
			Comment:   h.Comment,
			Created:   h.Created.Unix(),
			CreatedBy: h.CreatedBy,
			ID:        "<missing>",
		}
		if !h.EmptyLayer {
			if layer < len(im.Layers) {
				item.Size = im.Layers[layer].Size
			}
			layer++
		}
		out[len(out)-1-i] = item
	}
	if len(out) > 0 {
		out[0].ID = im.ID.String()
		out[0].Tags = im.RepoTags
	}
	replyJSON(w, http.StatusOK, out)
}
