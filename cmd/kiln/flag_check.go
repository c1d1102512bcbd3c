package main

import (
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagHints says, per flag, what a value looks like; error messages about a flag end
// with it, so they say what to do as well as what is wrong.
func flagHints() map[string]string {
	return map[string]string{
		"context":                  "give a directory, such as /workspace or ., or a URL such as git://host/repo.git#refs/heads/main or s3://bucket/context.tar.gz",
		"dockerfile":               "give the Dockerfile's path, such as Dockerfile or build/Dockerfile",
		"destination":              "give an image reference, such as registry.example/app:1.0",
		"build-arg":                "give KEY=VALUE, or KEY alone to take the value from the environment",
		"label":                    "give KEY=VALUE",
		"secret":                   "give id=ID,src=PATH or id=ID,env=VARIABLE",
		"ssh":                      "give default, default=/path/to/agent.sock or ID=/path/to/key",
		"snapshot-mode":            "give redo, full or time",
		"snapshotMode":             "give redo, full or time",
		"compression":              "give gzip or zstd",
		"isolation":                "give chroot, inplace or auto",
		"seccomp":                  "give default or unconfined",
		"verbosity":                "give panic, fatal, error, warn, info, debug or trace",
		"log-format":               "give text, color or json",
		"kaniko-dir":               "give a directory, such as /kaniko",
		"state-dir":                "give a directory, such as /var/lib/kiln",
		"cache-dir":                "give a directory, such as /cache",
		"max-context-size":         "give a size, such as 512MiB or 4GiB",
		"max-dockerfile-size":      "give a size, such as 64KiB or 1MiB",
		"max-add-size":             "give a size, such as 512MiB or 4GiB",
		"context-memory":           "give a size, such as 256MiB, or 0 to turn it off",
		"context-memory-dir":       "give a tmpfs directory, such as /dev/shm (--context-memory=0 turns memory contexts off)",
		"host":                     "give unix:///path/kiln.sock or tcp://host:port (without -H, kiln listens on <state-dir>/kiln.sock)",
		"buildkit-addr":            "give unix:///path/buildkit.sock or tcp://host:port (without it, BuildKit clients reach kiln through the -H listeners)",
		"image":                    "give an image reference, such as debian:bookworm",
		"insecure-registry":        "give a registry, such as registry.example:5000",
		"skip-tls-verify-registry": "give a registry, such as registry.example:5000",
		"registry-mirror":          "give a registry, such as mirror.gcr.io or mirror.example/prefix",
		"registry-map":             "give original=mirror, such as index.docker.io=mirror.example",
		"registry-certificate":     "give registry=/path/ca.crt",
		"registry-client-cert":     "give registry=/path/cert.pem,/path/key.pem",
		"ignore-path":              "give an absolute path, such as /var/cache",
		"custom-platform":          "give os/arch[/variant], such as linux/amd64 or linux/arm/v7",
		"customPlatform":           "give os/arch[/variant], such as linux/amd64 or linux/arm/v7",
	}
}

// hint returns the hint for a flag, or a generic one naming its default.
func hint(fl *pflag.Flag) string {
	if h, ok := flagHints()[fl.Name]; ok {
		return h
	}
	if fl.DefValue != "" && fl.DefValue != "[]" {
		return fmt.Sprintf("give a value, or leave the flag out for its default, %s", fl.DefValue)
	}
	return "give a value, or leave the flag out"
}

// emptyIsIgnored reports the repeatable flags whose empty entries kaniko ignores (an
// empty registry or path matches nothing): kiln drops them with a warning rather than
// fail a pipeline kaniko ran, typically one passing --insecure-registry=$UNSET.
func emptyIsIgnored(flag string) bool {
	switch flag {
	case "insecure-registry", "skip-tls-verify-registry", "ignore-path", "registry-mirror", "build-arg":
		return true
	}
	return false
}

// checkEmptyFlags fails when a flag was given an empty value where none makes sense:
// a flag whose default is not empty (so "" is not "the default": typically a script's
// unset variable), or one entry of a repeatable flag. Empty entries kaniko ignores are
// dropped instead, and returned as warnings.
func checkEmptyFlags(fs *pflag.FlagSet) (warnings []string, err error) {
	var errs []error
	fs.Visit(func(fl *pflag.Flag) {
		empty := false
		switch v := fl.Value.(type) {
		case pflag.SliceValue:
			var kept []string
			for _, s := range v.GetSlice() {
				if strings.TrimSpace(s) == "" {
					empty = true
					continue
				}
				kept = append(kept, s)
			}
			if empty && emptyIsIgnored(fl.Name) {
				if err := v.Replace(kept); err != nil {
					errs = append(errs, fmt.Errorf("--%s: %w", fl.Name, err))
				}
				warnings = append(warnings, fmt.Sprintf("--%s: an empty value is ignored, as kaniko ignores it; %s", fl.Name, hint(fl)))
				return
			}
		default:
			empty = fl.Value.Type() == "string" && strings.TrimSpace(fl.Value.String()) == "" && fl.DefValue != ""
		}
		if empty {
			errs = append(errs, fmt.Errorf("--%s: must not be empty; %s", fl.Name, hint(fl)))
		}
	})
	return warnings, errors.Join(errs...)
}

// typeHint says what a value of a flag type looks like, for values the command line
// parser rejects.
func typeHint(typ string) (string, bool) {
	switch typ {
	case "int":
		return "want a whole number, such as 3", true
	case "bool":
		return "want true or false", true
	case "duration":
		return "want a duration, such as 30m or 6h (0 for none)", true
	}
	return "", false
}

// flagError rewrites the command line parser's errors about a flag's value, which
// quote Go's number parsers ("strconv.ParseInt: parsing \"\": invalid syntax"), to
// say what the flag takes. Cobra calls it for every parse error.
func flagError(_ *cobra.Command, err error) error {
	var iv *pflag.InvalidValueError
	if errors.As(err, &iv) {
		fl := iv.GetFlag()
		want, ok := typeHint(fl.Value.Type())
		if !ok {
			want = hint(fl)
		}
		return fmt.Errorf("--%s %q: %s", fl.Name, iv.GetValue(), want)
	}
	var vr *pflag.ValueRequiredError
	if errors.As(err, &vr) {
		return fmt.Errorf("%w; %s", err, hint(vr.GetFlag()))
	}
	return err
}

// parsePlatformFlag checks an os/arch[/variant] flag value: go-containerregistry's
// parser accepts "/" and "linux/" as platforms with no architecture, which would
// build for nothing in particular.
func parsePlatformFlag(flag, s string) error {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return fmt.Errorf("--%s %q: not a platform; give os/arch[/variant], such as linux/amd64 or linux/arm/v7", flag, s)
	}
	return nil
}
