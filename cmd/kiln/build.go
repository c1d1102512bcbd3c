package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
)

// runBuild is `kiln build`: check the flags, build, and write the image out.
func runBuild(ctx context.Context, f *buildFlags, fs *pflag.FlagSet, h host, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, f.verbosity, f.logFormat, f.logTimestamp)
	if err != nil {
		return err
	}
	if err := checkUnsupported(fs); err != nil {
		return err
	}
	for _, w := range f.flagWarnings {
		log.Warn(w)
	}
	for _, n := range kanikoEnvNotices(h.lookupEnv) {
		log.Info(n)
	}
	if f.useNewRun {
		log.Info("--use-new-run changes nothing in kiln: its default snapshot (--snapshot-mode=redo) already detects a RUN's changes without reading every file")
	}
	limits, err := f.netLimits(h.lookupEnv)
	if err != nil {
		return err
	}
	h.keychain = credentials.Chain(credentials.WithLogger(log), credentials.WithNetLimits(limits))
	plan, err := planBuild(ctx, f, h)
	if err != nil {
		return err
	}
	defer func() {
		if err := plan.req.Context.Close(); err != nil {
			log.Warnf("removing the build context: %v", err)
		}
	}()
	if plan.ownStateDir {
		defer func() {
			if err := os.RemoveAll(plan.workspace.StateDir); err != nil {
				log.Warnf("removing the state directory: %v", err)
			}
		}()
	}
	if plan.workspace.Isolation == isolation.InPlace && !h.inContainer() {
		log.Warn("Building in place outside a container (--force): this machine's root filesystem is modified")
	}
	log.Debugf("Isolation %s, state directory %s", plan.workspace.Isolation, plan.workspace.StateDir)

	r := &renderer{log: log, stdout: stdout, stderr: stderr}
	report := &cacheReport{}
	if plan.cache != nil {
		plan.cache.logf = log.Infof
		log.Debugf("Step cache: %s", plan.cache.where)
		if !f.compressedCaching {
			log.Debug("--compressed-caching=false changes nothing: kiln compresses each layer once, to a file")
		}
	}
	res, err := builder.Build(ctx, plan.req,
		builder.WithWorkspace(plan.workspace),
		builder.WithRegistry(plan.registry),
		builder.WithEvents(report.tee(r.event)))
	if err == nil {
		log.Infof("Built image %s", res.ID)
		// The cache's pushes go on while the image is written out.
		err = writeOutputs(ctx, log, res.Image, plan.outputs, plan.registry)
	}
	return finishCache(ctx, log, plan.cache, report, f.cacheReport, err)
}

// writeOutputs sends the image everywhere the flags asked for: the local files first,
// then the registries, and the digest files last so they exist only when the pushes
// they describe succeeded.
func writeOutputs(ctx context.Context, log *logrus.Logger, img v1.Image, out outputs, reg builder.Registry) error {
	refs := make([]name.Reference, len(out.destinations))
	for i, t := range out.destinations {
		refs[i] = t
	}
	if out.tarPath != "" {
		log.Infof("Writing image to tarball %s", out.tarPath)
		if err := output.WriteTarball(out.tarPath, img, out.destinations); err != nil {
			return err
		}
	}
	if out.layoutPath != "" {
		log.Infof("Writing image to OCI layout %s", out.layoutPath)
		if err := output.WriteLayout(out.layoutPath, img, refs...); err != nil {
			return err
		}
	}
	if !out.push {
		log.Info("Skipping push to container registry due to --no-push flag")
	} else {
		for _, ref := range refs {
			log.Infof("Pushing image to %s", ref)
			digest, err := output.Push(ctx, img, []name.Reference{ref},
				out.pushOptions(reg.Keychain, ref.Context().RegistryStr(), log.Warnf)...)
			if err != nil {
				return err
			}
			log.Infof("Pushed %s", ref.Context().Digest(digest.String()))
		}
	}
	if err := output.WriteDigestFiles(img, refs, out.digestFile, out.nameDigestFile, out.nameTagDigestFile); err != nil {
		return fmt.Errorf("writing digest files: %w", err)
	}
	return writeBuilderOutput(out.builderOutput, img, out.destinations)
}
