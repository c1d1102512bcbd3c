package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/contexts"
)

// parseGitFlag parses kaniko's --git value, comma-separated key=value pairs:
// branch=NAME, single-branch=BOOL, recurse-submodules=BOOL, insecure-skip-tls=BOOL.
func parseGitFlag(spec string) (contexts.GitOptions, error) {
	var g contexts.GitOptions
	if spec == "" {
		return g, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return g, fmt.Errorf("--git %q: %q is not key=value", spec, kv)
		}
		if key == "branch" {
			g.Branch = value
			continue
		}
		b, err := strconv.ParseBool(value)
		if err != nil {
			return g, fmt.Errorf("--git %q: %s: %w", spec, key, err)
		}
		switch key {
		case "single-branch":
			g.SingleBranch = b
		case "recurse-submodules":
			g.RecurseSubmodules = b
		case "insecure-skip-tls":
			g.InsecureSkipTLS = b
		default:
			return g, fmt.Errorf("--git %q: unknown option %q (branch, single-branch, recurse-submodules or insecure-skip-tls)", spec, key)
		}
	}
	return g, nil
}

// contextOptions turns the context flags, kaniko's git variables (GIT_TOKEN, or
// GIT_USERNAME and GIT_PASSWORD) and standard input into contexts.Open options.
func contextOptions(f *buildFlags, h host) ([]contexts.OpenOption, error) {
	g, err := parseGitFlag(f.git)
	if err != nil {
		return nil, err
	}
	g.Token, _ = h.lookupEnv("GIT_TOKEN")
	g.Username, _ = h.lookupEnv("GIT_USERNAME")
	g.Password, _ = h.lookupEnv("GIT_PASSWORD")
	opts := []contexts.OpenOption{contexts.WithGit(g), contexts.WithSubPath(f.contextSubPath)}
	if h.stdin != nil {
		opts = append(opts, contexts.WithStdin(h.stdin))
	}
	return opts, nil
}
