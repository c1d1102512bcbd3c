// Package deploy tests kiln's deployment artefacts offline: the Helm chart in
// deploy/helm/kiln is rendered with several value sets by helm and every manifest is
// checked with kubeconform against Kubernetes schemas generated from the Go module's
// OpenAPI spec (scripts/deploy-tools.sh builds and caches all three), then the
// properties the chart promises (no privileged container, ports, probes, grace period,
// the registry Secret's mount) are checked on the parsed manifests.
package deploy
