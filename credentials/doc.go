// Package credentials owns registry authentication as go-containerregistry
// authn.Keychains: per-request credentials from the Docker API's X-Registry-Config and
// X-Registry-Auth headers, the docker config.json with its credential helpers
// (Default), the built-in Google, AWS and Azure registry keychains (Cloud), and the
// precedence between them (Chain). docs/credentials.md is the user's view.
//
// It is a leaf package.
package credentials
