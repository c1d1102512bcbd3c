package buildkitapi

import (
	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/kiln-build/kiln/builder"
)

// progress renders one build's events as SolveStatus messages. (A first version:
// one vertex per phase and per step.)
type progress struct {
	publish func(*controlapi.StatusResponse)
}

func newProgress(publish func(*controlapi.StatusResponse)) *progress {
	return &progress{publish: publish}
}

// vertex starts a vertex named name and returns the function that completes it.
func (p *progress) vertex(name string) func(error) { return func(error) {} }

// transfer reports bytes moved so far under the current vertex.
func (p *progress) transfer(what string, n int64, last bool) {}

// info reports a message (queue position) under its own vertex.
func (p *progress) info(msg string) {}

// warn reports a warning.
func (p *progress) warn(msg string) {}

// event renders a builder event.
func (p *progress) event(e builder.Event) {}

// close completes every open vertex, with err when the build failed.
func (p *progress) close(err error) {}
