// Package output writes a built image where the user asked for it: pushed to
// registries, saved as a docker-archive tarball (docker load), saved into an OCI image
// layout, and described in kaniko's digest files. Front doors describe it in a Spec
// and call Write, which keeps one order (files, pushes, digest files) and one set of
// push options (PushConfig) for all of them, and render its Events.
//
// Every writer streams layers from the image to their destination; none holds a whole
// layer in memory, so memory stays flat in the size of the image.
package output
