package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
)

// inPlaceNamespacesUsage documents --inplace-namespaces of kiln build and kiln serve.
const inPlaceNamespacesUsage = "In-place isolation only: give every RUN its own user, mount, PID and IPC namespaces, in which kiln's credentials, keys, sockets and state are covered and kiln's processes are out of reach (see docs/security.md): auto (when the kernel and container allow it, else a warning), on (else kiln refuses to start) or off (kaniko's model: RUN can read them)."

// inPlaceSecurity is what the in-place flags resolve to: whether RUN gets its
// namespaces, what it must not read, and a warning for the log.
type inPlaceSecurity struct {
	namespaces bool
	hidden     []string
	warning    string
}

// planInPlace resolves --inplace-namespaces (value) for a build in mode. secrets are the
// files the door's own flags name (TLS keys, tokens, --secret and --ssh sources);
// stateDirs are kiln's directories and sockets in the root.
func planInPlace(h host, mode isolation.Mode, value string, secrets []string, stateDirs ...string) (inPlaceSecurity, error) {
	switch value {
	case "auto", "on", "off":
	default:
		return inPlaceSecurity{}, fmt.Errorf("--inplace-namespaces: unknown value %q; give auto, on or off", value)
	}
	if mode != isolation.InPlace {
		return inPlaceSecurity{}, nil
	}
	exe, _ := h.executable()
	home, _ := h.lookupEnv("HOME")
	hidden := builder.HiddenPaths(builder.InPlaceHost{
		Executable: exe, StateDirs: stateDirs,
		Secrets: append(credentials.Files(h.lookupEnv, home), secrets...),
	})
	if value == "off" {
		return inPlaceSecurity{warning: "--inplace-namespaces=off: every RUN can read kiln's registry credentials and keys and signal kiln's processes (kaniko's model; see docs/security.md)"}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.inPlaceNamespaces(ctx); err != nil {
		if value == "on" {
			return inPlaceSecurity{}, fmt.Errorf("--inplace-namespaces=on: %w", err)
		}
		return inPlaceSecurity{warning: fmt.Sprintf("In-place RUN gets no namespaces of its own here (%v): every RUN can read kiln's registry credentials and keys "+
			"and signal kiln's processes, as under kaniko. Allow user namespaces to the container (see docs/security.md), or use --inplace-namespaces=on to refuse to start without them", err)}, nil
	}
	return inPlaceSecurity{namespaces: true, hidden: hidden}, nil
}

// secretFlagFiles lists the files --secret (id=ID,src=PATH, or a bare id naming a file)
// and --ssh (ID=SOCKET|KEY[,KEY...], or default's $SSH_AUTH_SOCK) read.
func secretFlagFiles(secrets, ssh []string, lookupEnv func(string) (string, bool)) []string {
	var files []string
	for _, spec := range secrets {
		if _, src, err := parseSecretFlag(spec, lookupEnv); err == nil && src.file != "" {
			files = append(files, src.file)
		}
	}
	for _, spec := range ssh {
		_, paths, _ := strings.Cut(spec, "=")
		if paths != "" {
			files = append(files, strings.Split(paths, ",")...)
		} else if sock, ok := lookupEnv("SSH_AUTH_SOCK"); ok && sock != "" {
			files = append(files, sock)
		}
	}
	return files
}
