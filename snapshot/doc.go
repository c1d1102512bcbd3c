// Package snapshot owns the build root's filesystem state: it extracts layers into a
// root safely (whiteouts, opaque directories, hardlinks, devices, xattrs, no escape from
// the root), records per-path metadata, finds what changed since, and streams the
// changes into a compressed layer blob on disk while computing its digests.
//
// It is a leaf package: it knows nothing of Dockerfiles, builds or HTTP.
package snapshot
