package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WarmRequest says which base images Warm stores in a base cache (kaniko's warmer).
type WarmRequest struct {
	// Images are image references to cache, for Platform.
	Images []string
	// Dockerfile, when not empty, adds the base image of each of its stages: FROM
	// arguments expanded with the ARGs before the first FROM and BuildArgs, stages
	// that start from an earlier stage and scratch left out, FROM --platform honoured.
	Dockerfile     []byte
	DockerfileName string
	BuildArgs      map[string]*string
	// Platform is "os/arch[/variant]"; empty means the host's.
	Platform string
	// Force downloads images again although the cache holds them (kaniko's --force).
	// Cached blobs are content-addressed, so this only repairs a damaged cache.
	Force bool
}

// BaseImage is one image a build would pull.
type BaseImage struct {
	Ref      string
	Platform v1.Platform
	// Explicit says the platform was asked for (the request's, or FROM --platform): an
	// image that does not provide it is then an error, not a warning.
	Explicit bool
}

// Warm stores each image of req in the base cache directory dir, as a build whose
// Workspace.BaseCache is dir pulls it: tags are resolved in their registry now. It goes
// on past an image that fails and returns every failure; kaniko's warmer fails only
// when all images do, which lets a broken image in a warm-up job go unnoticed.
// WithRegistry and WithEvents apply; other options are ignored.
func Warm(ctx context.Context, dir string, req *WarmRequest, opts ...Option) error {
	s := settings{events: func(Event) {}}
	for _, o := range opts {
		o(&s)
	}
	if dir == "" {
		return errors.New("warm: no cache directory")
	}
	platform, err := parsePlatform(req.Platform)
	if err != nil {
		return err
	}
	images := make([]BaseImage, 0, len(req.Images))
	for _, ref := range req.Images {
		images = append(images, BaseImage{Ref: ref, Platform: platform})
	}
	if len(req.Dockerfile) > 0 {
		bases, err := DockerfileBaseImages(&Request{
			Dockerfile:     req.Dockerfile,
			DockerfileName: req.DockerfileName,
			BuildArgs:      req.BuildArgs,
			Platform:       req.Platform,
		})
		if err != nil {
			return err
		}
		images = append(images, bases...)
	}
	if len(images) == 0 {
		return errors.New("warm: no images to cache: give an image or a Dockerfile with a base image")
	}
	c, err := openBaseCache(dir)
	if err != nil {
		return err
	}
	p := newPuller(s.registry, platform, "", withPullEvents(s.events), withBaseCache(c, PullAlways), withForce(req.Force))
	var errs []error
	seen := map[string]bool{}
	for _, img := range images {
		key := img.Ref + "|" + img.Platform.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		s.events(Info{Message: fmt.Sprintf("Caching %s (%s)", img.Ref, img.Platform.String())})
		want := platformWant{Platform: img.Platform, explicit: req.Platform != "" || img.Explicit}
		if _, id, err := p.pull(ctx, img.Ref, want); err != nil {
			errs = append(errs, err)
		} else {
			s.events(Info{Message: fmt.Sprintf("Cached %s: image %s", img.Ref, id)})
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// DockerfileBaseImages returns the images the stages of req's Dockerfile start from,
// in order, as a build of req would resolve them: ARGs before the first FROM and the
// build args expanded, stage names and scratch left out.
func DockerfileBaseImages(req *Request) ([]BaseImage, error) {
	platform, err := parsePlatform(req.Platform)
	if err != nil {
		return nil, err
	}
	df, err := parseDockerfile(req, InputLimits{})
	if err != nil {
		return nil, err
	}
	b := &build{req: req, df: df, args: newBuildArgs(req.BuildArgs), lex: shell.NewLex(df.escape), emit: func(Event) {},
		platform: platformWant{Platform: platform, explicit: req.Platform != ""}}
	b.args.setPlatforms(hostPlatform(), platform)
	if err := b.declareGlobalArgs(); err != nil {
		return nil, err
	}
	env := shellEnv(b.args.globalEnv())
	var out []BaseImage
	for i := range df.stages {
		def := &df.stages[i]
		name, _, err := b.lex.ProcessWord(def.BaseName, env)
		if err != nil {
			return nil, b.instructionError(def.Location, def.SourceCode, err)
		}
		if name == "" {
			return nil, b.instructionError(def.Location, def.SourceCode, fmt.Errorf("base name (%s) should not be blank", def.BaseName))
		}
		if j, ok := df.stageIndex(name, i); ok && df.stages[j].Name == strings.ToLower(name) {
			continue
		}
		if strings.EqualFold(name, "scratch") {
			continue
		}
		p, err := b.stagePlatform(def, env)
		if err != nil {
			return nil, b.instructionError(def.Location, def.SourceCode, err)
		}
		out = append(out, BaseImage{Ref: name, Platform: p.Platform, Explicit: p.explicit})
	}
	return out, nil
}
