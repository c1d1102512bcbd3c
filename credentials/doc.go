// Package credentials owns registry authentication as go-containerregistry
// authn.Keychains: docker config.json with its credential helpers today; cloud
// keychains and per-request credentials later.
//
// It is a leaf package.
package credentials
