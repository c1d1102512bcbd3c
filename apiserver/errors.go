package apiserver

import (
	"encoding/json"
	"net/http"
)

// writeError answers with Docker's error shape. The Content-Type must be exactly
// application/json: the CLI parses the message only then.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
