package builder

import (
	"path/filepath"

	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// InPlaceHost is what a front door knows of the container a build runs in, for the
// engine to decide what an in-place build must leave alone (IgnoreSet). Front doors
// read it from the machine (mount table, their own executable) and from their flags;
// the rules live here, so every door ignores the same paths.
type InPlaceHost struct {
	// Mounts are the container's mount points (volumes, secrets, the context); "/",
	// the build root itself, is never ignored.
	Mounts []string
	// Executable is the kiln binary's path; InstallDir says what of it is kept.
	Executable string
	// StateDirs are kiln's own directories in the root: state, caches, listener
	// sockets, the kaniko dir, a fetched context.
	StateDirs []string
	// KeepVarRun keeps /var/run (--ignore-var-run, the default: it often holds
	// mounted sockets).
	KeepVarRun bool
	// Secrets are files kiln reads secrets from: registry and cloud credentials
	// (credentials.Files), TLS keys, the auth token, --secret and --ssh sources.
	Secrets []string
}

// HiddenPaths returns what an in-place RUN must not read (Workspace.Hidden): kiln's
// secrets, its state and sockets, and its installation directory (where kiln's image
// keeps its docker config). The container's other mounts stay visible: a pod's
// volumes are often the build's own input.
func HiddenPaths(h InPlaceHost) []string {
	paths := append([]string{}, h.Secrets...)
	paths = append(paths, h.StateDirs...)
	if h.Executable != "" {
		paths = append(paths, InstallDir(h.Executable))
	}
	return paths
}

// IgnoreSet returns the paths a build in mode must leave alone: extra (--ignore-path)
// always, and in place everything the build shares "/" with: the kernel filesystems,
// every mount, kiln itself and its state.
func IgnoreSet(mode isolation.Mode, h InPlaceHost, extra ...string) *snapshot.Ignore {
	if mode != isolation.InPlace {
		return snapshot.NewIgnore(extra...)
	}
	// /busybox is the debug image's shell and /kaniko kaniko's directory, which kiln's
	// image keeps (/kaniko/executor, /kaniko/.docker) for pipelines that name its paths;
	// kaniko leaves both alone too.
	paths := []string{"/proc", "/sys", "/dev", "/busybox", "/kaniko"}
	paths = append(paths, h.StateDirs...)
	for _, m := range h.Mounts {
		if filepath.Clean(m) != "/" { // the root mount is the build root itself
			paths = append(paths, m)
		}
	}
	if h.Executable != "" {
		paths = append(paths, InstallDir(h.Executable))
	}
	if h.KeepVarRun {
		paths = append(paths, "/var/run")
	}
	paths = append(paths, extra...)
	return snapshot.NewIgnore(paths...)
}

// InstallDir is what an in-place build keeps of kiln's installation: its directory
// (/kiln, like kaniko's /kaniko), or only the binary when it sits in a system
// directory that images populate themselves.
func InstallDir(exe string) string {
	dir := filepath.Dir(exe)
	switch dir {
	case "/", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin":
		return exe
	}
	return dir
}
