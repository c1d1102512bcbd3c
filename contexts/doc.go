// Package contexts owns build contexts: where the files a build may COPY come from (a
// local directory, a tar stream in any common compression, or an http(s) URL to an
// archive or a Dockerfile; git and bucket sources come later) and which of them
// .dockerignore excludes. Archives are extracted path-safely, within size limits.
//
// It is a leaf package.
package contexts
