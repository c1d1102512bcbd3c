package apiserver

import "github.com/gorilla/mux"

// systemRoutes registers /_ping, /version and /info. (being written)
func (s *Server) systemRoutes(r *mux.Router) {}
