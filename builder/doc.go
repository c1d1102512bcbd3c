// Package builder owns Dockerfile semantics: it parses a Dockerfile with buildkit's
// parser, picks the stages a build needs, expands ARG and ENV with buildkit's shell
// lexer, and executes every instruction the way Docker's classic builder does — pulling
// bases, running RUN through an isolation.Runner, copying files with builder/copier,
// snapshotting each change into a layer with package snapshot — while it keeps the image
// config and history. Build is the single entry point for every front door; progress
// leaves as Events, never as terminal or HTTP output.
package builder
