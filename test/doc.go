// Package test holds kiln's whole-program suites: the import-direction check, and (in
// sub-packages) end-to-end and differential tests that drive the real kiln binary, a
// real registry and Docker's classic builder as the oracle.
package test
