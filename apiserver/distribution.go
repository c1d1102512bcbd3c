package apiserver

import (
	"encoding/json"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/gorilla/mux"
)

// distributionInspect is GET /distribution/{name}/json's answer: what the registry
// holds under the name (docker buildx reads it after pushing through the Engine API).
type distributionInspect struct {
	Descriptor v1.Descriptor
	Platforms  []v1.Platform
}

// inspectDistribution answers GET /distribution/{name}/json as dockerd does: the
// manifest's descriptor as the registry serves it, and the platforms it is for,
// asked with the request's X-Registry-Auth credentials, then the server's.
func (s *Server) inspectDistribution(w http.ResponseWriter, r *http.Request) {
	raw := mux.Vars(r)["name"]
	ref, err := name.ParseReference(raw, s.nameOptions(raw)...)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid reference "+raw+": "+err.Error())
		return
	}
	desc, err := remote.Get(ref, remote.WithContext(r.Context()), remote.WithAuthFromKeychain(s.pushKeychain(r)),
		remote.WithTransport(s.build.PushTransport(ref.Context().RegistryStr())))
	if err != nil {
		writeError(w, http.StatusNotFound, pushError(err, s.pushKeychain(r), ref.Context()).Error())
		return
	}
	out := distributionInspect{Descriptor: desc.Descriptor}
	out.Descriptor.Platform = nil
	if desc.MediaType.IsIndex() {
		if idx, err := desc.ImageIndex(); err == nil {
			if m, err := idx.IndexManifest(); err == nil {
				for _, d := range m.Manifests {
					if d.Platform != nil {
						out.Platforms = append(out.Platforms, *d.Platform)
					}
				}
			}
		}
	} else if img, err := desc.Image(); err == nil {
		if cf, err := img.ConfigFile(); err == nil {
			out.Platforms = append(out.Platforms, v1.Platform{Architecture: cf.Architecture, OS: cf.OS, Variant: cf.Variant})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
