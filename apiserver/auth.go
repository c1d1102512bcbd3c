package apiserver

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// loginBody is POST /auth's success answer, in dockerd's field order.
type loginBody struct {
	IdentityToken string `json:"IdentityToken"`
	Status        string `json:"Status"`
}

// login answers POST /auth (docker login, docs/server.md, "docker login") by checking the
// credentials against the registry's /v2/ the way a push would use them: ping, then
// basic auth or a token exchange. kiln stores nothing: the CLI keeps the credentials
// and sends them with each push (X-Registry-Auth) and build (X-Registry-Config).
//
// A refusal is 401 "login attempt to http://host/v2/ failed with status: 401
// Unauthorized": dockerd 20.10 sent that message with a 500, newer daemons with 401,
// which lets `docker login` with stored credentials say they expired and prompt.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	// The body is Docker's AuthConfig. go-containerregistry's AuthConfig decodes
	// itself (it splits "auth"), so the server address is read on its own.
	var (
		cfg  authn.AuthConfig
		addr struct {
			ServerAddress string `json:"serveraddress"`
		}
	)
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(raw, &cfg)
	}
	if err == nil {
		err = json.Unmarshal(raw, &addr)
	}
	if err != nil {
		// Never quote the body: it holds a password.
		writeError(w, http.StatusBadRequest, "invalid login request: the body must be a JSON AuthConfig")
		return
	}
	host := registryHost(addr.ServerAddress)
	var opts []name.Option
	if s.build.PlainHTTP != nil && s.build.PlainHTTP(host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid registry address %q: %v", addr.ServerAddress, err))
		return
	}
	rt := s.registryTransport(host)
	v2 := reg.Scheme() + "://" + reg.RegistryStr() + "/v2/"
	refused := func(status int) {
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("login attempt to %s failed with status: %d %s", v2, status, http.StatusText(status)))
	}
	t, err := transport.NewWithContext(r.Context(), reg, authn.FromConfig(cfg), rt, nil)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
			refused(terr.StatusCode)
			return
		}
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("login to %s: %v", reg.RegistryStr(), err))
		return
	}
	hreq, err := http.NewRequestWithContext(r.Context(), http.MethodGet, v2, nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp, err := (&http.Client{Transport: t}).Do(hreq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("login to %s: %v", reg.RegistryStr(), err))
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		refused(resp.StatusCode)
		return
	}
	replyJSON(w, http.StatusOK, loginBody{Status: "Login Succeeded"})
}

// registryHost turns a server address as the CLI sends it ("127.0.0.1:5011",
// "https://index.docker.io/v1/") into a registry host; Docker Hub's names, and an empty
// address (docker login's default), are Docker Hub.
func registryHost(addr string) string {
	h := strings.TrimSpace(addr)
	if u, err := url.Parse(h); err == nil && u.Host != "" {
		h = u.Host
	} else {
		h, _, _ = strings.Cut(h, "/")
	}
	switch h {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return name.DefaultRegistry
	}
	return h
}

// registryTransport is the transport for one registry: its own or the default,
// held to the network limits, without certificate checks where the server was told to skip them.
func (s *Server) registryTransport(host string) http.RoundTripper {
	rt := s.build.PushTransport(host)
	if s.build.Insecure == nil || !s.build.Insecure(host) {
		return rt
	}
	base, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	t := base.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // configured per registry by the operator
	return t
}
