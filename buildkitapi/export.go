package buildkitapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/store"
)

// Exporter response keys, as BuildKit's image exporters report them (buildx writes
// them to --metadata-file; --iidfile reads the config digest).
const (
	keyConfigDigest = "containerimage.config.digest"
	keyImageDigest  = "containerimage.digest"
	keyImageName    = "image.name"
)

// exporters returns the solve's exporters, the deprecated single-exporter fields
// included.
func exporters(req *controlapi.SolveRequest) []*controlapi.Exporter {
	if len(req.Exporters) > 0 || req.ExporterDeprecated == "" {
		return req.Exporters
	}
	return []*controlapi.Exporter{{Type: req.ExporterDeprecated, Attrs: req.ExporterAttrsDeprecated}}
}

// export hands a build's result to every exporter of the solve and returns what
// they report. With no exporter the image is built and dropped, as with buildctl.
func (s *Server) export(ctx context.Context, j *job, req *controlapi.SolveRequest, b *built) (map[string]string, error) {
	resp := map[string]string{keyConfigDigest: b.res.ID.String()}
	if d, err := b.res.Image.Digest(); err == nil {
		resp[keyImageDigest] = d.String()
	}
	p := newProgress(j.status.publish)
	for i, e := range exporters(req) {
		var err error
		switch e.Type {
		case "moby", "image":
			err = s.exportImage(ctx, p, b, e, resp)
		default:
			err = s.exportToClient(ctx, p, b, i, e, resp)
		}
		if err != nil {
			p.close(err)
			return nil, err
		}
	}
	p.close(nil)
	return resp, nil
}

// exportImage stores the image under the exporter's names (moby: the local store,
// where docker images and docker push find it; image: the same, and pushed when
// push=true). With the docker driver buildx pushes through the Engine API itself.
func (s *Server) exportImage(ctx context.Context, p *progress, b *built, e *controlapi.Exporter, resp map[string]string) error {
	var tags []name.Tag
	for _, n := range strings.Split(e.Attrs["name"], ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		t, err := store.ParseTag(n)
		if err != nil {
			return codeError(codes.InvalidArgument, "exporter %s: name %q: %v", e.Type, n, err)
		}
		tags = append(tags, t)
	}
	if len(tags) > 0 {
		resp[keyImageName] = e.Attrs["name"]
	}
	done := p.vertex("exporting to image")
	if s.cfg.Store != nil {
		if _, err := s.cfg.Store.Put(ctx, b.res.Image, tags...); err != nil {
			done(err)
			return fmt.Errorf("storing the image: %w", err)
		}
	}
	done(nil)
	if e.Type != "image" || !truthy(e.Attrs["push"]) {
		return nil
	}
	if len(tags) == 0 {
		return codeError(codes.InvalidArgument, "push=true needs a name to push to (--tag or name=)")
	}
	spec := output.Spec{PushConfig: s.cfg.Push, Compressor: s.compressor()}
	spec.PushConfig.Keychain = s.keychain(ctx, b.sessionID)
	for _, t := range tags {
		spec.Push = append(spec.Push, t)
	}
	done = p.vertex("pushing " + e.Attrs["name"])
	err := output.Write(ctx, b.res.Image, spec, func(ev output.Event) {
		if pe, ok := ev.(output.Pushed); ok {
			p.info(fmt.Sprintf("pushed %s: digest: %s size: %d", pe.Ref.Name(), pe.Digest, pe.Size))
		}
	})
	done(err)
	return err
}

// truthy reads a boolean exporter attribute as BuildKit does.
func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}
