package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
)

// pushTags pushes the built image to every tag that names a registry ("registry/app:1",
// not "app:1"), kaniko's behaviour when the server runs with push-on-build. Progress is
// reported with the status lines `docker push` prints. No push aux is sent: in a build
// stream the CLI would take it for the image ID.
func (s *Server) pushTags(ctx context.Context, out *buildOutput, img v1.Image, o *buildOptions, kc authn.Keychain) error {
	spec := output.Spec{PushConfig: s.pushConfig(kc), Compressor: s.outputCompressor()}
	for i, tag := range o.tags {
		if namesRegistry(o.typed[i]) {
			spec.Push = append(spec.Push, tag)
		}
	}
	return output.Write(ctx, img, spec, func(e output.Event) {
		switch e := e.(type) {
		case output.Pushing:
			out.status("", "The push refers to repository ["+repositoryName(e.Ref.Context())+"]")
		case output.Pushed:
			out.status("", fmt.Sprintf("%s: digest: %s size: %d", e.Ref.Identifier(), e.Digest, e.Size))
		}
	})
}

// outputCompressor is how images leave the server (push-on-build, docker push, docker
// save): gzip, Docker's, memoized next to the build cache in the state directory. The
// store holds images as built, their layers plain tars, so a build nobody pushes or
// saves never compresses. Without a state directory it is nil: output.Spec.Compress
// then memoizes in a temporary directory.
func (s *Server) outputCompressor() *output.Compressor {
	if s.stateDir == "" {
		return nil
	}
	c, err := output.NewCompressor(filepath.Join(s.stateDir, "cache", "build", "compressed"), output.Gzip, 0)
	if err != nil {
		return nil // cannot fail for gzip at its default level
	}
	return c
}

// pushesSome reports whether push-on-build will push the build's image: one of its
// tags names a registry.
func (s *Server) pushesSome(o *buildOptions) bool {
	for i := range o.tags {
		if namesRegistry(o.typed[i]) {
			return true
		}
	}
	return false
}

// layerSinks compresses a build's new layers into the output memo as they are
// written, for a build push-on-build will push (builder.Request.LayerSinks); nil
// without a memo.
func (s *Server) layerSinks() func() (builder.LayerSink, error) {
	c := s.outputCompressor()
	if c == nil {
		return nil
	}
	return func() (builder.LayerSink, error) {
		sink, err := c.NewSink()
		if sink == nil || err != nil {
			return nil, err
		}
		return sink, nil
	}
}

// compressForOutput returns img with its layers compressed for a client, and what to
// call once it is written.
func (s *Server) compressForOutput(ctx context.Context, img v1.Image) (v1.Image, func(), error) {
	return output.Spec{Compressor: s.outputCompressor()}.Compress(ctx, img)
}

// namesRegistry reports whether a tag as typed starts with a registry host, by
// docker's rule: a first component with a dot or a port, or "localhost".
func namesRegistry(typed string) bool {
	first, _, found := strings.Cut(typed, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// repositoryName is the repository as `docker push` names it.
func repositoryName(r name.Repository) string {
	if r.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + r.RepositoryStr()
	}
	return r.Name()
}

// PushTransport is the transport pushes to registry use: the registry's own, or
// go-containerregistry's default held to the network limits. Every front door of a
// server pushes with it.
func (b BuildConfig) PushTransport(registry string) http.RoundTripper {
	if b.Transport != nil {
		if rt := b.Transport(registry); rt != nil {
			return rt
		}
	}
	return b.Net.Transport(remote.DefaultTransport.(*http.Transport))
}

// pushConfig is how the server pushes: credentials, the registry's own transport
// (CA, client certificate) and whether its certificate is verified.
func (s *Server) pushConfig(kc authn.Keychain) output.PushConfig {
	c := output.PushConfig{
		Keychain: kc, Transport: s.build.PushTransport,
		PlainHTTP: s.build.PlainHTTP, SkipTLSVerify: s.build.Insecure,
	}
	if obs := s.build.Workspace.Observer; obs != nil {
		c.Pushed = func(n int64) { obs.Transferred(builder.TransferPushed, n) }
	}
	return c
}
