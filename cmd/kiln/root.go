package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// newRootCommand returns kiln's command tree writing to stdout and stderr.
func newRootCommand(stdout, stderr io.Writer, h host) *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Build container images from Dockerfiles, without a Docker daemon",
		// Errors are printed once, by run, with the exit code they map to; usage is
		// for --help, not for every failed build.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetFlagErrorFunc(flagError)
	root.SetErr(stderr)
	root.AddCommand(newBuildCommand(stdout, stderr, h), newServeCommand(stderr, h), newWarmCommand(stderr, h), newCacheCommand(stdout), newVersionCommand(stdout))
	return root
}

// newBuildCommand returns `kiln build`.
func newBuildCommand(stdout, stderr io.Writer, h host) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build an image from a Dockerfile and push or save it",
		Long: `Build an image from a Dockerfile and push it to registries or save it locally.

The flags are kaniko's executor flags, so an existing kaniko invocation works with
"kiln build" in place of "/kaniko/executor", as do kaniko's variables
(KANIKO_REGISTRY_MIRROR, KANIKO_REGISTRY_MAP, KANIKO_NO_PUSH, KANIKO_DIR, GIT_TOKEN,
GIT_USERNAME, GIT_PASSWORD, S3_ENDPOINT, S3_FORCE_PATH_STYLE, AZURE_STORAGE_ACCESS_KEY,
DOCKER_CONFIG, BUILDER_OUTPUT). kaniko's deprecated spellings --snapshotMode,
--customPlatform, --tarPath and --whitelist-var-run are accepted too. A kaniko flag
kiln cannot honour (--force-build-metadata, --upload-tar) is an error when it would
change the outcome, never silently ignored. docs/kaniko-flags.md maps every kaniko flag.

RUN instructions are isolated by chroot (a root directory per stage under --state-dir;
needs root) or run in place in the container's own root filesystem, as kaniko does.
By default kiln builds in place inside a container and in a chroot elsewhere.

When a RUN instruction fails, kiln exits with that command's exit code.`,
		Example: `  kiln build --context=/workspace --destination=registry.example/app:1.0
  kiln build -c . -f build/Dockerfile --no-push --tar-path=app.tar -d app:dev
  kiln build -c . --oci-layout-path=out/ --build-arg VERSION=1.0 --target=runtime`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			warnings, err := checkEmptyFlags(cmd.Flags())
			if err != nil {
				return err
			}
			f.flagWarnings = warnings
			if err := enterRootless(cmd.Context(), f.isolation, f.force, h); err != nil {
				return err
			}
			return runBuild(cmd.Context(), f, cmd.Flags(), h, stdout, stderr)
		},
	}
	cmd.Flags().SortFlags = false
	addBuildFlags(cmd.Flags(), f)
	return cmd
}

// newVersionCommand returns `kiln version`.
func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(stdout, "kiln %s\n", version)
			return err
		},
	}
}
