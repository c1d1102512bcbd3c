// Package output writes a built image where the user asked for it: pushed to
// registries, saved as a docker-archive tarball (docker load), saved into an OCI image
// layout, and described in kaniko's digest files.
//
// Every writer streams layers from the image to their destination; none holds a whole
// layer in memory, so memory stays flat in the size of the image.
package output
