// Package builder owns Dockerfile semantics: it parses a Dockerfile with buildkit's
// parser, picks the stages a build needs, expands ARG and ENV with buildkit's shell
// lexer, and executes every instruction the way Docker's classic builder does — pulling
// bases, running RUN through an isolation.Runner, copying files with builder/copier,
// snapshotting each change into a layer with package snapshot — while it keeps the image
// config and history. Build is the single entry point for every front door; progress
// leaves as Events, never as terminal or HTTP output.
//
// The rules of a build that are no protocol's live here too, so every front door gets
// them alike: an in-place Build holds the workspace's build lock (Workspace.LockPath)
// and resets the root when it ends, however it ends; IgnoreSet decides what an in-place
// build leaves alone from the facts a door reads. Where the image goes afterwards is
// builder/output's Write.
package builder
