package builder

import (
	"context"
	"errors"
)

// Option configures one Build call.
type Option func(*settings)

type settings struct {
	workspace Workspace
	events    func(Event)
	registry  Registry
}

// WithWorkspace sets where the build runs. Required.
func WithWorkspace(ws Workspace) Option { return func(s *settings) { s.workspace = ws } }

// WithEvents sets the function that receives progress events. It is called from the
// build's goroutine, in order, and must not block for long.
func WithEvents(fn func(Event)) Option { return func(s *settings) { s.events = fn } }

// WithRegistry sets how base images are pulled.
func WithRegistry(r Registry) Option { return func(s *settings) { s.registry = r } }

// Build runs req and returns the built image. It is the single entry point of the
// engine: every front door calls it.
func Build(ctx context.Context, req *Request, opts ...Option) (*Result, error) {
	return nil, errors.New("builder: not implemented yet")
}
