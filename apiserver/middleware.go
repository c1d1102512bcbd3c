package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/negroni"
)

// requestIDHeader carries a request's ID: the client's if it sent one, else kiln's.
const requestIDHeader = "X-Request-Id"

// middleware wraps the router, outermost first: the headers dockerd puts on every
// response, the request ID and access log, panic recovery, bearer-token auth, and the
// /vX.Y prefix. Auth comes before the version check so that a client without the token
// learns nothing, not even which versions are served.
func (s *Server) middleware(h http.Handler) http.Handler {
	return negroni.New(
		negroni.HandlerFunc(s.logRequest),
		negroni.HandlerFunc(s.recoverPanic),
		negroni.HandlerFunc(s.authenticate),
		negroni.Wrap(withAPIVersion(h)),
	)
}

type requestIDKey struct{}

// requestID returns the ID of the request ctx belongs to ("" outside a request).
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestLog returns the server's logger with the request's ID, for handlers that log
// about a request, so their lines and the access log line can be matched.
func (s *Server) requestLog(r *http.Request) *logrus.Entry {
	return s.log.WithField("request_id", requestID(r.Context()))
}

// logRequest sets the headers every response carries, gives the request an ID and
// logs it when it is done, even when a handler panicked past recoverPanic.
func (s *Server) logRequest(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	start := time.Now()
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Ostype", "linux")
	h.Set("Docker-Experimental", "false")
	h.Set("Server", "kiln/"+s.version+" (linux)")

	id := clientRequestID(r.Header.Get(requestIDHeader))
	if id == "" {
		id = newRequestID()
	}
	h.Set(requestIDHeader, id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))

	defer func() {
		status := http.StatusOK // what net/http sends when a handler writes nothing
		if nw, ok := w.(negroni.ResponseWriter); ok && nw.Status() != 0 {
			status = nw.Status()
		}
		entry := s.log.WithFields(logrus.Fields{
			"request_id": id,
			"method":     r.Method,
			// The path only: query strings carry build args, and build args carry
			// secrets often enough.
			"path":     r.URL.Path,
			"status":   status,
			"duration": time.Since(start).Round(time.Microsecond).String(),
			"agent":    r.UserAgent(),
		})
		// The CLI pings before every command; at info level the pings would drown
		// the requests that matter.
		if _, rest := splitVersion(r.URL.Path); rest == "/_ping" && status < 400 {
			entry.Debug("request")
			return
		}
		entry.Info("request")
	}()
	next(w, r)
}

// clientRequestID returns a client's X-Request-Id if it is safe to echo and log: short
// and printable ASCII without spaces.
func clientRequestID(id string) string {
	if len(id) == 0 || len(id) > 128 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return ""
		}
	}
	return id
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on Linux (Go 1.24+ crashes instead)
	return hex.EncodeToString(b[:])
}

// recoverPanic turns a handler's panic into a 500 with Docker's error shape, logged
// with its stack, so one bad request never takes the server down. negroni's own
// Recovery is not used: it sends the 500 before its formatter can set the JSON
// Content-Type the CLI needs, and it writes into responses that already started.
func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler { // net/http aborts the connection quietly for this one
			panic(p)
		}
		s.requestLog(r).WithField("panic", fmt.Sprint(p)).Errorf("handler panicked\n%s", debug.Stack())
		if nw, ok := w.(negroni.ResponseWriter); ok && nw.Written() {
			// The status line is gone, and a build stream ended cleanly reads as a
			// success to the CLI: cut the connection so the client sees it fail.
			panic(http.ErrAbortHandler)
		}
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal server error: %v", p))
	}()
	next(w, r)
}

// errUnauthorized is what a request without the right token is told. It names the
// scheme so a user knows what to put in config.json's HttpHeaders.
var errUnauthorized = errors.New("unauthorized: kiln requires a bearer token")

// authenticate checks the bearer token when the server has one. /_ping (versioned or
// not) stays open: see WithAuthToken.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	if s.authToken == "" {
		next(w, r)
		return
	}
	if _, rest := splitVersion(r.URL.Path); rest == "/_ping" {
		next(w, r)
		return
	}
	if !s.validToken(r.Header.Get("Authorization")) {
		s.requestLog(r).Warn("request without a valid bearer token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="kiln"`)
		writeError(w, http.StatusUnauthorized, errUnauthorized.Error())
		return
	}
	next(w, r)
}

// validToken reports whether an Authorization header carries the server's token. The
// comparison is of digests, in constant time, so neither the token's content nor its
// length leaks through timing.
func (s *Server) validToken(header string) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(s.authToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
