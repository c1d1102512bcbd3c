package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder/output"
)

// pushTags pushes the built image to every tag that names a registry ("registry/app:1",
// not "app:1"), kaniko's behaviour when the server runs with push-on-build. Progress is
// reported with the status lines `docker push` prints. No push aux is sent: in a build
// stream the CLI would take it for the image ID.
func (s *Server) pushTags(ctx context.Context, out *buildOutput, img v1.Image, o *buildOptions, kc authn.Keychain) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	for i, tag := range o.tags {
		if !namesRegistry(o.typed[i]) {
			continue
		}
		ref := tag
		if s.build.PlainHTTP != nil && s.build.PlainHTTP(tag.RegistryStr()) {
			if ref, err = name.NewTag(tag.String(), name.Insecure); err != nil {
				return err
			}
		}
		out.status("", "The push refers to repository ["+repositoryName(tag)+"]")
		digest, err := output.Push(ctx, img, []name.Reference{ref}, s.pushOptions(kc, tag.RegistryStr())...)
		if err != nil {
			return err
		}
		out.status("", fmt.Sprintf("%s: digest: %s size: %d", tag.TagStr(), digest, len(raw)))
	}
	return nil
}

// namesRegistry reports whether a tag as typed starts with a registry host, by
// docker's rule: a first component with a dot or a port, or "localhost".
func namesRegistry(typed string) bool {
	first, _, found := strings.Cut(typed, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// repositoryName is the repository as `docker push` names it.
func repositoryName(t name.Tag) string {
	if t.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + t.RepositoryStr()
	}
	return t.Context().Name()
}

// transport is registry's transport: its own, or go-containerregistry's default
// held to the network limits.
func (b BuildConfig) transport(registry string) http.RoundTripper {
	if b.Transport != nil {
		if rt := b.Transport(registry); rt != nil {
			return rt
		}
	}
	return b.Net.Transport(remote.DefaultTransport.(*http.Transport))
}

// pushOptions are the options of a push to registry: credentials, the registry's own
// transport (CA, client certificate) and whether its certificate is verified.
func (s *Server) pushOptions(kc authn.Keychain, registry string) []output.PushOption {
	opts := []output.PushOption{output.WithKeychain(kc), output.WithTransport(s.build.transport(registry))}
	if s.build.Insecure != nil {
		opts = append(opts, output.WithSkipTLSVerify(s.build.Insecure))
	}
	return opts
}
