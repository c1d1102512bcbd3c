package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/credentials"
)

// warmFlags holds kiln warm's flags: kaniko's warmer's, with the registry options
// bound to a buildFlags so pulls are configured exactly as kiln build configures them.
type warmFlags struct {
	images     []string
	cacheDir   string
	dockerfile string
	buildArgs  []string
	force      bool
	platform   string
	cacheTTL   time.Duration

	// reg holds the registry and logging flags, shared with kiln build.
	reg buildFlags
}

// newWarmCommand returns `kiln warm`.
func newWarmCommand(stderr io.Writer, h host) *cobra.Command {
	f := &warmFlags{}
	cmd := &cobra.Command{
		Use:   "warm [flags]",
		Short: "Fill a base-image cache directory for later builds (kaniko's warmer)",
		Long: `Download base images into a cache directory that builds read with --cache-dir, so
they start without downloading their base. The flags are kaniko's warmer's (its
spelling --customPlatform too); docs/kaniko-flags.md maps them.

The cache is an OCI image layout (blobs/sha256, index.json): layers are shared
between images, every blob is checked against its digest, and builds and warmers
may use one directory at the same time. Tags are resolved in their registry on
every warm; images given by digest are used by builds without any registry.

With --dockerfile, the base image of every stage is cached, FROM arguments
expanded with the Dockerfile's ARGs and --build-arg; stage names and scratch are
skipped. Every image is tried; kiln warm fails if any failed.`,
		Example: `  kiln warm --cache-dir=/cache --image=debian:bookworm --image=golang:1.26
  kiln warm -c /cache -d Dockerfile --build-arg BASE=alpine:3.20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			warnings, err := checkEmptyFlags(cmd.Flags())
			if err != nil {
				return err
			}
			f.reg.flagWarnings = warnings
			return runWarm(cmd.Context(), f, h, stderr)
		},
	}
	cmd.Flags().SortFlags = false
	addWarmFlags(cmd.Flags(), f)
	return cmd
}

// addWarmFlags registers kiln warm's flags on fs, bound to f.
func addWarmFlags(fs *pflag.FlagSet, f *warmFlags) {
	fs.StringArrayVarP(&f.images, "image", "i", nil, "Image to cache. Repeat for several.")
	fs.StringVarP(&f.cacheDir, "cache-dir", "c", "/cache", "Directory of the cache (created if missing).")
	fs.StringVarP(&f.dockerfile, "dockerfile", "d", "", "Dockerfile (a path or an http(s) URL) whose stages' base images are cached as well.")
	fs.StringArrayVar(&f.buildArgs, "build-arg", nil, "Build-time variable for --dockerfile's FROM lines, KEY=VALUE, or KEY alone to take the value from the environment. Repeat for several.")
	fs.BoolVarP(&f.force, "force", "f", false, "Download images again although the cache holds them (repairs a damaged cache).")
	fs.StringVar(&f.platform, "custom-platform", "", "Platform to cache images for, os/arch[/variant], if different from the host's.")
	fs.StringVar(&f.platform, "customPlatform", "", "kaniko's warmer spelling of --custom-platform.")
	_ = fs.MarkHidden("customPlatform")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", 336*time.Hour, "Accepted for kaniko compatibility: kiln resolves tags on every warm and keeps images by digest, so cached images do not expire.")

	r := &f.reg
	fs.BoolVar(&r.insecurePull, "insecure-pull", false, "Pull from registries over plain HTTP.")
	fs.StringArrayVar(&r.insecureRegistries, "insecure-registry", nil, "Registry (host[:port]) to pull from over plain HTTP. Repeat for several.")
	fs.BoolVar(&r.skipTLSVerifyPull, "skip-tls-verify-pull", false, "Pull without verifying registries' TLS certificates.")
	fs.StringArrayVar(&r.skipTLSVerifyRegistries, "skip-tls-verify-registry", nil, "Registry (host[:port]) whose TLS certificate is not verified. Repeat for several.")
	fs.IntVar(&r.imageDownloadRetry, "image-download-retry", 0, "Number of times a failed image download is retried.")
	addRegistryFlags(fs, &r.registryFlags)

	fs.StringVarP(&r.verbosity, "verbosity", "v", "info", "Log level: panic, fatal, error, warn, info, debug or trace.")
	fs.StringVar(&r.logFormat, "log-format", "color", "Log format: text, color or json.")
	fs.BoolVar(&r.logTimestamp, "log-timestamp", false, "Timestamp log lines.")
}

// runWarm is `kiln warm`.
func runWarm(ctx context.Context, f *warmFlags, h host, stderr io.Writer) error {
	log, err := newLogger(stderr, f.reg.verbosity, f.reg.logFormat, f.reg.logTimestamp)
	if err != nil {
		return err
	}
	for _, w := range f.reg.flagWarnings {
		log.Warn(w)
	}
	if len(f.images) == 0 && f.dockerfile == "" {
		return fmt.Errorf("give at least one --image or a --dockerfile")
	}
	if err := checkBuildArgs(f.buildArgs); err != nil {
		return err
	}
	if f.platform != "" {
		if err := parsePlatformFlag("custom-platform", f.platform); err != nil {
			return err
		}
	}
	dir, err := baseCacheDir(f.cacheDir)
	if err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("--cache-dir: must not be empty; give a directory, such as /cache")
	}
	regs, err := planRegistries(&f.reg, h.lookupEnv)
	if err != nil {
		return err
	}
	keychain := h.keychain
	if keychain == nil {
		keychain = credentials.Chain(credentials.WithLogger(log), credentials.WithNetLimits(regs.net))
	}
	reg := pullRegistry(&f.reg, keychain)
	regs.apply(&reg, f.reg.skipDefaultRegistryFallback)

	req := &builder.WarmRequest{
		Images:    f.images,
		BuildArgs: resolveBuildArgs(f.buildArgs, h.lookupEnv),
		Platform:  f.platform,
		Force:     f.force,
	}
	if f.dockerfile != "" {
		if req.Dockerfile, err = readWarmDockerfile(ctx, f.dockerfile, regs.net.Client()); err != nil {
			return err
		}
		req.DockerfileName = f.dockerfile
	}
	r := &renderer{log: log, stdout: io.Discard, stderr: stderr}
	if err := builder.Warm(ctx, dir, req, builder.WithRegistry(reg), builder.WithEvents(r.event)); err != nil {
		return err
	}
	log.Infof("Base-image cache %s is warm", dir)
	return nil
}

// baseCacheDir returns --cache-dir as an absolute path, or "" when not given.
func baseCacheDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--cache-dir %q: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("--cache-dir %s: not a directory; give a directory (it is created when missing)", abs)
	}
	return abs, nil
}

// readWarmDockerfile reads --dockerfile: a file, or an http(s) URL as kaniko's warmer
// allows.
func readWarmDockerfile(ctx context.Context, spec string, client *http.Client) ([]byte, error) {
	if !strings.HasPrefix(spec, "http://") && !strings.HasPrefix(spec, "https://") {
		data, err := contexts.ReadHostDockerfile(spec)
		if err != nil {
			return nil, fmt.Errorf("--dockerfile: %w", err)
		}
		return data, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec, nil)
	if err != nil {
		return nil, fmt.Errorf("--dockerfile: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("--dockerfile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--dockerfile %s: %s", spec, resp.Status)
	}
	// A Dockerfile is small; a server sending gigabytes is not serving one.
	data, err := io.ReadAll(io.LimitReader(resp.Body, contexts.MaxDockerfileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--dockerfile %s: %w", spec, err)
	}
	if len(data) > contexts.MaxDockerfileBytes {
		return nil, fmt.Errorf("--dockerfile %s: larger than the %d MiB limit for a Dockerfile", spec, contexts.MaxDockerfileBytes>>20)
	}
	return data, nil
}
