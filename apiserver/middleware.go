package apiserver

import "net/http"

// middleware wraps the router. (being written)
func (s *Server) middleware(h http.Handler) http.Handler { return h }
