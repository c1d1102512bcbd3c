// Package copier implements the file-level semantics of the Dockerfile COPY and ADD
// instructions the way Docker's classic builder does (moby builder/dockerfile copy.go,
// internals.go, dispatchers.go): source lookup with wildcards and .dockerignore,
// destination rules, ownership, modes, mtimes, hardlinks, archive extraction for ADD,
// and ADD of http(s) URLs.
//
// The builder parses the Dockerfile, expands variables and resolves --chown names to
// numbers; copier only moves files. Every path on both sides is resolved inside its
// root as if that root were "/", so neither a context symlink nor an image symlink can
// reach the host's filesystem.
package copier
