package main

import (
	"context"
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
	rootlessNotes(log)
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
	if plan.workspace.SeccompUnconfined && plan.workspace.Isolation == isolation.Chroot {
		log.Warn(seccompWarning)
	}
	for _, w := range plan.warnings {
		log.Warn(w)
	}
	log.Debugf("Isolation %s, state directory %s", plan.workspace.Isolation, plan.workspace.StateDir)
	// Only asked-for caps open cgroups: on cgroup v2 that moves this process.
	if plan.workspace.MaxMemory > 0 || plan.workspace.MaxPids > 0 {
		if err := openCgroups(log, &plan.workspace); err != nil {
			return err
		}
	}

	r := &renderer{log: log, stdout: stdout, stderr: stderr, bars: newProgressBars(stderr, f.logFormat, log)}
	report := &cacheReport{}
	if plan.cache != nil {
		plan.cache.logf = log.Infof
		log.Debugf("Step cache: %s", plan.cache.where)
		if !f.compressedCaching {
			log.Debug("--compressed-caching=false changes nothing: kiln caches layers uncompressed and compresses them once, for the outputs")
		}
	}
	// The build's scratch files (stage roots: a RUN's every new file) are deleted while
	// the image is written out, not before.
	var cleaning chan error // set when Build hands the removal over (before it returns)
	res, err := builder.Build(ctx, plan.req,
		builder.WithWorkspace(plan.workspace),
		builder.WithRegistry(plan.registry),
		builder.WithEvents(report.tee(r.event)),
		builder.WithDeferredCleanup(func(cleanup func() error) {
			cleaning = make(chan error, 1)
			go func() { cleaning <- cleanup() }()
		}))
	if err == nil {
		log.Infof("Built image %s", res.ID)
		// The cache's pushes go on while the image is written out.
		err = plan.req.Phases.Exclusive(builder.PhaseExport, func() error {
			return writeOutputs(ctx, log, res.Image, plan.outputs, plan.registry, r.bars)
		})
	}
	if cleaning != nil {
		if cerr := <-cleaning; cerr != nil {
			log.Warnf("Removing the build's scratch files: %v", cerr)
		}
	}
	if res != nil {
		logPhases(log, plan.req.Phases.Times(), f.phaseTimes)
	}
	// The message ends with whose problem a failure is (builder.Classify); the exit
	// code stays a failed RUN's own, 1 otherwise (exitCode).
	return builder.WithClass(finishCache(ctx, log, plan.cache, report, f.cacheReport, err))
}

// logPhases logs the build's breakdown per phase as one "Phases: …" line (the line
// scripts/bench reads): at info level with --phase-times, else at debug level.
func logPhases(log *logrus.Logger, t builder.PhaseTimes, info bool) {
	if info {
		log.Info(t.String())
	} else {
		log.Debug(t.String())
	}
}

// writeOutputs sends the image everywhere the flags asked for (output.Write: the
// local files, the registries, the digest files) and then to kaniko's BUILDER_OUTPUT,
// logging each step as kaniko does.
func writeOutputs(ctx context.Context, log *logrus.Logger, img v1.Image, out outputs, reg builder.Registry, bars *progressBars) error {
	spec := output.Spec{
		Compressor: out.compressor,
		Names:      out.destinations,
		Tarball:    out.tarPath, Layout: out.layoutPath,
		PushConfig: out.pushConfig(reg.Keychain),
		DigestFile: out.digestFile, NameDigestFile: out.nameDigestFile, NameTagDigestFile: out.nameTagDigestFile,
	}
	spec.PushConfig.Progress = func(ref name.Reference, u v1.Update) {
		bars.update(ref.String(), "Pushing", u.Complete, u.Total)
	}
	if out.push {
		for _, t := range out.destinations {
			spec.Push = append(spec.Push, t)
		}
	}
	if out.builderOutput != "" {
		// BUILDER_OUTPUT names the digest the outputs got: the compressed image's.
		var err error
		if img, _, err = spec.Compress(ctx, img); err != nil {
			return err
		}
	}
	if err := output.Write(ctx, img, spec, func(e output.Event) { bars.reset(); renderOutput(log, e) }); err != nil {
		return err
	}
	if !out.push {
		// kaniko says so once the image is written wherever else it goes.
		log.Info("Skipping push to container registry due to --no-push flag")
	}
	return writeBuilderOutput(out.builderOutput, img, out.destinations)
}

// renderOutput logs an output event as kaniko's executor words it.
func renderOutput(log *logrus.Logger, e output.Event) {
	switch e := e.(type) {
	case output.Writing:
		if e.Kind == "tarball" {
			log.Infof("Writing image to tarball %s", e.Path)
		} else {
			log.Infof("Writing image to OCI layout %s", e.Path)
		}
	case output.Pushing:
		log.Infof("Pushing image to %s", e.Ref)
	case output.PushSkipped:
		log.Warnf("Not pushed to %s: the tag is immutable and keeps the image it has (--push-ignore-immutable-tag-errors): %v", e.Ref, e.Err)
	case output.Pushed:
		log.Infof("Pushed %s", e.Ref.Context().Digest(e.Digest.String()))
	}
}
