package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// defaultShutdownGrace is --shutdown-grace's default: as long as the chart's
// terminationGracePeriodSeconds, so a pod stopped by Kubernetes finishes its builds.
const defaultShutdownGrace = 10 * time.Minute

// drainPoll is how often a draining server looks whether its builds are done.
const drainPoll = 100 * time.Millisecond

// watchTerm starts listening for SIGTERM, which Kubernetes and docker stop send to
// stop a server: it drains rather than cancels (wait, drain).
func (d *daemon) watchTerm() {
	d.term = make(chan os.Signal, 1)
	signal.Notify(d.term, syscall.SIGTERM)
}

// terminated reports whether the context that stopped the server ended for a
// SIGTERM. The signal reaches main's context and d.term at the same moment; a short
// wait covers the order in which the two are seen.
func (d *daemon) terminated() bool {
	if d.term == nil {
		return false
	}
	select {
	case <-d.term:
		return true
	case <-time.After(100 * time.Millisecond):
		return false
	}
}

// drain is the first part of a graceful stop (SIGTERM): the queue refuses new
// builds (HTTP 503, gRPC Unavailable, /readyz false) while the listeners stay open,
// running builds get up to grace to finish, and the requests that store or push
// their images then finish too. It returns when all that is done, when grace is
// over or when a second signal comes; wait then cancels whatever still runs.
func (d *daemon) drain() {
	if d.queue == nil {
		return
	}
	d.queue.Drain()
	if d.grace <= 0 {
		d.log.Info("Shutting down: cancelling running builds (--shutdown-grace 0)")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.grace)
	defer cancel()
	// A second signal means "now": stop waiting.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
			d.log.Warn("Second signal: cancelling running builds now")
			cancel()
		case <-ctx.Done():
		}
	}()

	running := d.queue.Running() + d.queue.Waiting()
	if d.bk != nil {
		running = max(running, d.bk.Active())
	}
	if running > 0 {
		d.log.Infof("Draining: accepting no new builds; %d running build(s) have until %s (--shutdown-grace %s) to finish",
			running, time.Now().Add(d.grace).Format(time.TimeOnly), d.grace)
	} else {
		d.log.Info("Draining: accepting no new builds")
	}
	if err := d.queue.WaitIdle(ctx, drainPoll); err != nil {
		d.graceOver(ctx, "builds")
		return
	}
	// Builds are done; their requests may still store or push images. Shutdown
	// closes the listeners and waits for those requests, within what is left of grace.
	if err := d.srv.Shutdown(ctx); err != nil {
		d.graceOver(ctx, "requests")
		return
	}
	for d.bk != nil && d.bk.Active() > 0 {
		select {
		case <-ctx.Done():
			d.graceOver(ctx, "BuildKit solves")
			return
		case <-time.After(drainPoll):
		}
	}
	d.log.Info("Drained: every build finished")
}

// graceOver logs why the drain stopped waiting for what: the grace ran out (ctx's
// deadline), or a second signal came, which said so already.
func (d *daemon) graceOver(ctx context.Context, what string) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		d.log.Warnf("Shutting down: %s still running after --shutdown-grace %s are cancelled", what, d.grace)
	}
}
