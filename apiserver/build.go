package apiserver

import "github.com/gorilla/mux"

// buildRoutes registers POST /build. (being written)
func (s *Server) buildRoutes(r *mux.Router) {}
