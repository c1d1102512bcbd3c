package apiserver

import (
	"encoding/json"
	"net/http"
	"sync"
)

// message is one Docker JSON message, as the CLI's jsonmessage package reads it.
type message struct {
	Stream         string          `json:"stream,omitempty"`
	Status         string          `json:"status,omitempty"`
	ID             string          `json:"id,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ProgressDetail *progressDetail `json:"progressDetail,omitempty"`
	Aux            any             `json:"aux,omitempty"`
	Error          string          `json:"error,omitempty"`
	ErrorDetail    *errorDetail    `json:"errorDetail,omitempty"`
}

type progressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

type errorDetail struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

// stream writes Docker JSON messages, each ended by "\r\n" as dockerd does, flushing
// after every message so the client sees progress as it happens. It is safe for
// concurrent use.
type stream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	enc     *json.Encoder
	started bool
	err     error // the first write error: the client went away
}

func newStream(w http.ResponseWriter) *stream {
	return &stream{w: w, enc: json.NewEncoder(w)}
}

// send writes one message, sending the 200 header first if needed. Errors are kept
// (see Err) rather than returned: a client that left ends the request's context.
func (s *stream) send(m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if !s.started {
		s.w.Header().Set("Content-Type", "application/json")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	raw, err := json.Marshal(m)
	if err == nil {
		_, err = s.w.Write(append(raw, '\r', '\n'))
	}
	if err != nil {
		s.err = err
		return
	}
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Started reports whether anything was written: after that, errors must go in-stream.
func (s *stream) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Stream writes text for the CLI to print verbatim (it must carry its own newlines).
func (s *stream) Stream(text string) { s.send(message{Stream: text}) }

// Status writes a status line, optionally for an id (a layer, a tag).
func (s *stream) Status(id, status string) { s.send(message{ID: id, Status: status}) }

// Aux writes an aux message (never printed; the CLI hands it to its aux callback).
func (s *stream) Aux(v any) { s.send(message{Aux: v}) }

// Error ends a stream with an error. code becomes the CLI's exit code (0 means 1).
func (s *stream) Error(code int, msg string) {
	s.send(message{Error: msg, ErrorDetail: &errorDetail{Code: code, Message: msg}})
}
