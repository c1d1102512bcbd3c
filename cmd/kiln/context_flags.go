package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	units "github.com/docker/go-units"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
)

// contextSSH is how an ssh git context (--context git@host:repo.git) is cloned, as
// kaniko's go-git did it: with the agent of --ssh default, else the one at
// $SSH_AUTH_SOCK; the host key must be in --ssh-known-hosts, else $SSH_KNOWN_HOSTS, else
// the user's ~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts (none: no key is known).
func contextSSH(f *buildFlags, h host, agents builder.SSHAgents) (func(context.Context) (net.Conn, error), string) {
	var dial func(context.Context) (net.Conn, error)
	if agents != nil {
		dial = func(ctx context.Context) (net.Conn, error) { return agents.DialSSH(ctx, "default") }
	} else if sock, ok := h.lookupEnv("SSH_AUTH_SOCK"); ok && sock != "" {
		dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	if known := knownHostsFile(f.knownHosts, h.lookupEnv); known != "" {
		return dial, known
	}
	var files []string
	if home, ok := h.lookupEnv("HOME"); ok && home != "" {
		files = append(files, filepath.Join(home, ".ssh", "known_hosts"))
	}
	files = append(files, "/etc/ssh/ssh_known_hosts")
	var found []string
	for _, p := range files {
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return dial, os.DevNull
	}
	return dial, strings.Join(found, ":")
}

// parseGitFlag parses kaniko's --git value, comma-separated key=value pairs:
// branch=NAME, single-branch=BOOL, recurse-submodules=BOOL, insecure-skip-tls=BOOL.
func parseGitFlag(spec string) (contexts.GitOptions, error) {
	var g contexts.GitOptions
	if spec == "" {
		return g, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		if strings.TrimSpace(kv) == "" {
			return g, fmt.Errorf("--git %q: an empty option; give key=value options separated by commas, such as branch=main,single-branch=true", spec)
		}
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return g, fmt.Errorf("--git %q: %q is not key=value", spec, kv)
		}
		if key == "branch" {
			if value == "" {
				return g, fmt.Errorf("--git %q: the branch name is empty; give branch=NAME, or leave branch out for the remote's default branch", spec)
			}
			g.Branch = value
			continue
		}
		b, err := strconv.ParseBool(value)
		if err != nil {
			return g, fmt.Errorf("--git %q: %s=%q: want true or false", spec, key, value)
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

// parseSize reads a size limit: a number of bytes, or one with a unit as docker's
// flags take them (512MiB, 4g, 32GiB; binary units). It must be positive.
func parseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%q: not a size (bytes, or a number with a unit such as 512MiB or 4GiB)", s)
	}
	if n <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return n, nil
}

// cloudOptions reads the bucket contexts' settings from the environment, as kaniko
// does: S3_ENDPOINT and S3_FORCE_PATH_STYLE for S3-compatible stores,
// AZURE_STORAGE_ACCESS_KEY for Azure Blob, and kiln's KILN_AZURE_BLOB_ENDPOINTS
// (comma-separated) for blob services outside Azure's domains, such as Azurite. The
// clouds' own credential variables (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,
// STORAGE_EMULATOR_HOST) are read by their SDKs.
func cloudOptions(lookupEnv func(string) (string, bool)) (contexts.CloudOptions, error) {
	var o contexts.CloudOptions
	o.S3Endpoint, _ = lookupEnv("S3_ENDPOINT")
	if v, ok := lookupEnv("S3_FORCE_PATH_STYLE"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("S3_FORCE_PATH_STYLE=%q: not a boolean", v)
		}
		o.S3ForcePathStyle = b
	}
	o.AzureAccessKey, _ = lookupEnv("AZURE_STORAGE_ACCESS_KEY")
	if v, _ := lookupEnv("KILN_AZURE_BLOB_ENDPOINTS"); v != "" {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				o.AzureBlobEndpoints = append(o.AzureBlobEndpoints, e)
			}
		}
	}
	return o, nil
}

// gitPullMethod reads kaniko's GIT_PULL_METHOD: a git:// context is fetched over
// http when it says "http", and over https otherwise, whatever else it says (kaniko
// treats an unknown value as unset). kiln build never speaks the git protocol.
func gitPullMethod(lookupEnv func(string) (string, bool)) string {
	if v, _ := lookupEnv("GIT_PULL_METHOD"); v == "http" {
		return "http"
	}
	return "https"
}

// contextOptions turns the context flags, kaniko's git variables (GIT_PULL_METHOD;
// GIT_TOKEN, or GIT_USERNAME and GIT_PASSWORD), the SSH agents and standard input into
// contexts.Open options.
func contextOptions(f *buildFlags, h host, agents builder.SSHAgents) ([]contexts.OpenOption, error) {
	g, err := parseGitFlag(f.git)
	if err != nil {
		return nil, err
	}
	g.SSHAgent, g.SSHKnownHostsFile = contextSSH(f, h, agents)
	g.PullMethod = gitPullMethod(h.lookupEnv)
	g.Token, _ = h.lookupEnv("GIT_TOKEN")
	g.Username, _ = h.lookupEnv("GIT_USERNAME")
	g.Password, _ = h.lookupEnv("GIT_PASSWORD")
	cloud, err := cloudOptions(h.lookupEnv)
	if err != nil {
		return nil, err
	}
	limits, err := f.netLimits(h.lookupEnv)
	if err != nil {
		return nil, err
	}
	guard, err := f.guard()
	if err != nil {
		return nil, err
	}
	limits = limits.Guarded(guard)
	opts := []contexts.OpenOption{contexts.WithGit(g), contexts.WithSubPath(f.contextSubPath), contexts.WithCloud(cloud),
		// kiln build has kiln serve's default limits (builder.InputLimits' zero value, and
		// this ratio for tar:// and fetched contexts): docs/security.md.
		contexts.WithArchiveOptions(contexts.WithNetLimits(limits), contexts.WithMaxRatio(builder.DefaultMaxArchiveRatio))}
	if f.maxContextSize != "" {
		n, err := parseSize(f.maxContextSize)
		if err != nil {
			return nil, fmt.Errorf("--max-context-size: %w", err)
		}
		opts = append(opts, contexts.WithArchiveOptions(contexts.WithMaxBytes(n)))
	}
	if h.stdin != nil {
		opts = append(opts, contexts.WithStdin(h.stdin))
	}
	return opts, nil
}
