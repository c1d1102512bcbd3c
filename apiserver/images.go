package apiserver

import "github.com/gorilla/mux"

// imageRoutes registers the /images endpoints, /auth and the prunes. (being written)
func (s *Server) imageRoutes(r *mux.Router) {}
