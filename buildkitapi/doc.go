// Package buildkitapi owns kiln's BuildKit front door: BuildKit's gRPC API (the Control
// and LLBBridge services) and its client session, served on the Engine API listeners as
// the /grpc and /session upgrades buildx's docker driver uses, and on listeners of its
// own for buildx's remote driver and buildctl (kiln serve --buildkit-addr).
//
// It turns a Solve with the dockerfile.v0 frontend, the files the client sends through
// its session and the session's credentials into a builder.Request, runs it through the
// same queue and engine as /build, renders builder events as SolveStatus vertexes, and
// hands the result to the exporter the client asked for. It holds no build rule of its
// own (docs/buildkit.md). It owns the receiving side of the session's file sync: the
// contexts it keeps for each client, their in-memory indexes, and the receiver that
// writes a client's changes into them (context_sync.go).
package buildkitapi
