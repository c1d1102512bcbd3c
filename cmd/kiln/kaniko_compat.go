package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
)

// This file holds what kiln build accepts only because kaniko's executor does: its
// deprecated spellings, --bucket, --kaniko-dir, the flags kiln refuses with a reason,
// and kaniko's environment variables. docs/kaniko-flags.md maps every kaniko flag
// and variable to what kiln does with it; kaniko_flags_test.go keeps the two in step.

// addKanikoFlags registers kaniko's flags that have no better home in kiln's help.
func addKanikoFlags(fs *pflag.FlagSet, f *buildFlags) {
	fs.StringVarP(&f.bucket, "bucket", "b", "", "kaniko's older spelling of a Cloud Storage context: --bucket=NAME is --context=gs://NAME (the archive gs://NAME/context.tar.gz); a value with :// is used as the context as it is. It takes precedence over --context, as in kaniko.")
	fs.StringVar(&f.kanikoDir, "kaniko-dir", "", "kaniko's own directory (KANIKO_DIR): given, kiln keeps its scratch files in a new directory under DIR/state when --state-dir is not given, and in-place builds leave DIR alone. Left out, kiln uses the directory of its own binary (in place) or a temporary directory.")

	// kaniko's deprecated spellings, hidden; pflag prints the deprecation on use.
	fs.StringVar(&f.snapshotMode, "snapshotMode", "redo", "kaniko's deprecated spelling of --snapshot-mode.")
	fs.StringVar(&f.platform, "customPlatform", "", "kaniko's deprecated spelling of --custom-platform.")
	fs.StringVar(&f.tarPath, "tarPath", "", "kaniko's deprecated spelling of --tar-path.")
	fs.BoolVar(&f.ignoreVarRun, "whitelist-var-run", true, "kaniko's deprecated spelling of --ignore-var-run.")
	for old, now := range map[string]string{"snapshotMode": "snapshot-mode", "customPlatform": "custom-platform", "tarPath": "tar-path", "whitelist-var-run": "ignore-var-run"} {
		_ = fs.MarkDeprecated(old, "use --"+now)
	}

	for _, u := range unsupportedFlags() {
		u.register(fs, u.name, u.usage)
	}
}

// unsupportedFlag is a kaniko flag kiln accepts so existing invocations parse, but
// whose feature kiln does not have; reason says why and what to do instead.
type unsupportedFlag struct {
	name, usage, reason string
	register            func(fs *pflag.FlagSet, name, usage string)
}

// unsupportedFlags lists them. Giving one a value that would change the image fails
// the build instead of being silently ignored; false for a boolean (the feature off)
// and the default value are no-ops.
func unsupportedFlags() []unsupportedFlag {
	return []unsupportedFlag{{
		name:     "force-build-metadata",
		usage:    "kaniko's empty layers for instructions that change no files. Not supported: kiln, like docker build, adds no layer for ENV, LABEL, WORKDIR of an existing directory and the like; true is refused, false accepted.",
		reason:   "kiln adds no layer for an instruction that changes no files, as docker build does; leave the flag out to get the image Docker builds",
		register: boolFlag(false),
	}, {
		// kaniko's maintained fork (chainguard-dev/kaniko) adds these two
		name:     "upload-tar",
		usage:    "kaniko's HTTP POST of the --tar-path tarball to a URL. Not supported: write the tarball with --tar-path and upload it with curl; a URL is refused.",
		reason:   "kiln does not upload tarballs; write it with --tar-path and upload it yourself (curl -X POST --data-binary @FILE URL)",
		register: stringFlag(""),
	}, {
		name:     "upload-tar-retry",
		usage:    "retries for kaniko's --upload-tar. Not supported, as --upload-tar; 0 is accepted.",
		reason:   "kiln does not upload tarballs (see --upload-tar)",
		register: intFlag(0),
	}}
}

func stringFlag(def string) func(*pflag.FlagSet, string, string) {
	return func(fs *pflag.FlagSet, name, usage string) { fs.String(name, def, usage) }
}

func intFlag(def int) func(*pflag.FlagSet, string, string) {
	return func(fs *pflag.FlagSet, name, usage string) { fs.Int(name, def, usage) }
}

func boolFlag(def bool) func(*pflag.FlagSet, string, string) {
	return func(fs *pflag.FlagSet, name, usage string) { fs.Bool(name, def, usage) }
}

// checkUnsupported fails when one of unsupportedFlags() was given a value that would
// change the build.
func checkUnsupported(fs *pflag.FlagSet) error {
	var bad []string
	for _, u := range unsupportedFlags() {
		fl := fs.Lookup(u.name)
		if fl == nil || !fl.Changed || inert(fl) {
			continue
		}
		bad = append(bad, fmt.Sprintf("--%s=%s: not supported: %s", u.name, fl.Value, u.reason))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// inert reports whether a changed flag's value leaves the build as it is: a boolean
// set to false turns its feature off, and the default is the default.
func inert(fl *pflag.Flag) bool {
	switch fl.Value.Type() {
	case "bool":
		return fl.Value.String() == "false" || fl.Value.String() == fl.DefValue
	case "stringArray":
		return fl.Value.String() == "[]"
	}
	return fl.Value.String() == fl.DefValue
}

// contextSpec is the context to build from: --bucket, when given, as kaniko reads it,
// else --context.
func contextSpec(f *buildFlags) string {
	switch {
	case f.bucket == "":
		return f.context
	case strings.Contains(f.bucket, "://"):
		return f.bucket
	}
	return "gs://" + f.bucket
}

// applyKanikoEnv reads kaniko's variables that stand for flags: KANIKO_NO_PUSH=true
// is --no-push (a flag given as well still wins when it says true), KANIKO_DIR is
// --kaniko-dir when the flag is not given. KANIKO_REGISTRY_MIRROR and
// KANIKO_REGISTRY_MAP are read with the registry flags (registries.go).
func applyKanikoEnv(f *buildFlags, lookupEnv func(string) (string, bool)) error {
	if v, ok := lookupEnv("KANIKO_NO_PUSH"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("KANIKO_NO_PUSH=%q: want true or false", v)
		}
		f.noPush = f.noPush || b
	}
	if v, ok := lookupEnv("KANIKO_DIR"); ok && f.kanikoDir == "" {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("KANIKO_DIR is set but empty; give a directory, such as /kaniko, or unset it")
		}
		f.kanikoDir = v
	}
	if f.kanikoDir != "" && !filepath.IsAbs(f.kanikoDir) {
		return fmt.Errorf("--kaniko-dir %q: must be an absolute path, such as /kaniko", f.kanikoDir)
	}
	return nil
}

// kanikoEnvNotices returns a line for each of kaniko's variables that is set but that
// kiln does not read, so a pipeline that relies on one hears about it.
func kanikoEnvNotices(lookupEnv func(string) (string, bool)) []string {
	unread := []struct{ name, why string }{
		{"BENCHMARK_FILE", "kiln writes no timing file; --verbosity=debug logs how long each step took"},
		{"SNAPSHOT_TIMEOUT_DURATION", "kiln's snapshots have no time limit; a cancelled build (Ctrl-C, SIGTERM) stops them"},
		{"UPSTREAM_CLIENT_TYPE", "kiln's registry requests carry kiln's own User-Agent"},
		{"STACKLOG_PATH", "kiln writes no slowjam profile"},
	}
	var out []string
	for _, u := range unread {
		if v, ok := lookupEnv(u.name); ok && v != "" {
			out = append(out, fmt.Sprintf("%s is set, but kiln does not read it: %s", u.name, u.why))
		}
	}
	return out
}

// writeBuilderOutput writes kaniko's BUILDER_OUTPUT file, <dir>/images: one JSON
// object per destination, {"name": ..., "digest": ...}, for the Cloud Build steps
// that read it. dir "" writes nothing.
func writeBuilderOutput(dir string, img v1.Image, destinations []name.Tag) error {
	if dir == "" {
		return nil
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, t := range destinations {
		if err := enc.Encode(struct {
			Name   string `json:"name"`
			Digest string `json:"digest"`
		}{t.String(), d.String()}); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "images"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("BUILDER_OUTPUT: %w", err)
	}
	return nil
}
