package main

import "fmt"

// seccompUsage documents --seccomp of kiln build and kiln serve.
const seccompUsage = "System call filter of RUN: default (no_new_privs and Docker's default seccomp profile) or unconfined (neither; for debugging a build the filter breaks, never for untrusted Dockerfiles). In place, the filter applies with --inplace-namespaces only."

// seccompWarning is logged at start when --seccomp=unconfined.
const seccompWarning = "--seccomp=unconfined: RUN runs WITHOUT the seccomp filter and no_new_privs; a hostile Dockerfile can reach every system call the kernel allows its capabilities. Use it for debugging only."

// parseSeccomp reads --seccomp: whether RUN goes unconfined.
func parseSeccomp(v string) (unconfined bool, err error) {
	switch v {
	case "default":
		return false, nil
	case "unconfined":
		return true, nil
	}
	return false, fmt.Errorf("--seccomp: unknown value %q; give default or unconfined", v)
}
