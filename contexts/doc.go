// Package contexts owns build contexts: where the files a build may COPY come from
// (a local directory today; tar archives, git, buckets and URLs later) and which of them
// .dockerignore excludes.
//
// It is a leaf package.
package contexts
