package credentials

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// FromRegistryConfig returns the keychain a Docker API request carries in its
// X-Registry-Config header: base64url (padded, as the docker CLI writes it; unpadded
// and standard base64 are accepted too) of a JSON map from registry to AuthConfig
// ({"127.0.0.1:5011":{"username":…,"password":…,"serveraddress":…}}). The CLI sends
// every credential it has stored, so the keychain answers only for the registry an
// entry names; for any other it answers anonymous, which lets an
// authn.NewMultiKeychain fall through to the server's own keychain.
//
// Registry keys are matched as docker does: scheme and path are ignored
// ("https://127.0.0.1:5011/v2/" names 127.0.0.1:5011), and Docker Hub's many names
// (https://index.docker.io/v1/, docker.io, registry-1.docker.io) are one.
//
// An empty header ("" or "{}") gives a keychain that always answers anonymous. Errors
// never quote the header: it holds passwords.
func FromRegistryConfig(header string) (authn.Keychain, error) {
	if header == "" {
		return registryKeychain{}, nil
	}
	raw, err := decodeHeader(header)
	if err != nil {
		return nil, fmt.Errorf("X-Registry-Config: %w", err)
	}
	var auths map[string]authn.AuthConfig
	if err := json.Unmarshal(raw, &auths); err != nil {
		return nil, fmt.Errorf("X-Registry-Config: %w", redactJSONError(err))
	}
	kc := registryKeychain{}
	// Sorted so that when two keys name one registry the choice is stable; an entry
	// keyed by the bare host wins over one keyed by a URL.
	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		bi, bj := keys[i] == registryHost(keys[i]), keys[j] == registryHost(keys[j])
		if bi != bj {
			return bi
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		cfg := auths[k]
		if cfg == (authn.AuthConfig{}) {
			continue
		}
		host := registryHost(k)
		if _, seen := kc[host]; !seen {
			kc[host] = cfg
		}
	}
	return kc, nil
}

// FromRegistryAuth returns the keychain of an X-Registry-Auth header (POST
// /images/{name}/push): base64url of one AuthConfig. When it names its registry
// (serveraddress, as the docker CLI sends it) it answers only for that registry;
// without one it answers for any, which is all a push to one registry asks of it.
func FromRegistryAuth(header string) (authn.Keychain, error) {
	if header == "" {
		return registryKeychain{}, nil
	}
	raw, err := decodeHeader(header)
	if err != nil {
		return nil, fmt.Errorf("X-Registry-Auth: %w", err)
	}
	var cfg authn.AuthConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("X-Registry-Auth: %w", redactJSONError(err))
	}
	var addr struct {
		ServerAddress string `json:"serveraddress"`
	}
	if err := json.Unmarshal(raw, &addr); err != nil {
		return nil, fmt.Errorf("X-Registry-Auth: %w", redactJSONError(err))
	}
	if cfg == (authn.AuthConfig{}) {
		return registryKeychain{}, nil
	}
	if addr.ServerAddress == "" {
		return anyRegistry{cfg}, nil
	}
	return registryKeychain{registryHost(addr.ServerAddress): cfg}, nil
}

// decodeHeader undoes the header's base64. The CLI writes base64.URLEncoding; older
// clients and hand-written requests use other variants.
func decodeHeader(h string) ([]byte, error) {
	h = strings.TrimSpace(h)
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if raw, err := enc.DecodeString(h); err == nil {
			return raw, nil
		}
	}
	return nil, errors.New("not base64")
}

// redactJSONError describes a decoding error by its position and kind only, so that
// no message built from it can ever quote part of a credential.
func redactJSONError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at offset %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("invalid JSON: %s is not a %s", typ.Value, typ.Type)
	}
	return errors.New("an auth field is not base64 of user:password")
}

// registryHost reduces a registry key to the host[:port] go-containerregistry names
// registries by.
func registryHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	h = strings.ToLower(h)
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "index.docker.io"
	}
	return h
}

// registryKeychain answers with the credentials stored for a target's registry.
type registryKeychain map[string]authn.AuthConfig

// Resolve implements authn.Keychain.
func (k registryKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k[registryHost(target.RegistryStr())]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}

// anyRegistry answers with one set of credentials for every registry.
type anyRegistry struct{ cfg authn.AuthConfig }

// Resolve implements authn.Keychain.
func (a anyRegistry) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(a.cfg), nil
}
