package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/apiserver"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/buildkitapi"
)

// daemon is a running `kiln serve`: one HTTP server on every listener.
type daemon struct {
	log       *logrus.Logger
	srv       *http.Server
	listeners []net.Listener
	// bk serves BuildKit's gRPC API on bkListeners (--buildkit-addr) and the Engine
	// API listeners' /grpc upgrades.
	bk          *buildkitapi.Server
	bkListeners []net.Listener
	bkHosts     []string
	// hosts are the listeners' addresses as DOCKER_HOST values, in -H order.
	hosts []string
	// cancelBuilds cancels the context every request's context derives from.
	cancelBuilds context.CancelCauseFunc
	// errc receives the first listener that fails.
	errc      chan error
	logWriter io.Closer
	// stateLock is the server's hold on --state-dir (recoverState).
	stateLock io.Closer
	// queue is the build queue every door shares; a stopping server drains it for
	// up to grace (--shutdown-grace) before it cancels builds (drain).
	queue *builder.Queue
	grace time.Duration
	// term receives SIGTERM, which drains; SIGINT cancels at once (watchTerm).
	term chan os.Signal
	// ops serves --metrics-addr; nil without it.
	ops *opsServer
}

// listenAll opens every listener cfg names. Nothing is left listening when one fails.
func listenAll(ctx context.Context, lg *logrus.Logger, cfg *serveConfig) (*daemon, error) {
	d := &daemon{log: lg, errc: make(chan error, len(cfg.hosts))}
	for _, spec := range cfg.hosts {
		l, dockerHost, err := listen(ctx, spec, cfg.tls)
		if err != nil {
			d.closeListeners()
			return nil, err
		}
		d.listeners = append(d.listeners, l)
		d.hosts = append(d.hosts, dockerHost)
		if spec.network == "tcp" && cfg.tls == nil && cfg.token == "" && !isLoopback(l.Addr()) {
			lg.Warnf("%s accepts builds from anyone who can reach it: use --tlsverify or --auth-token-file", dockerHost)
		}
	}
	for _, spec := range cfg.buildkitHosts {
		// BuildKit clients speak gRPC, which needs HTTP/2 negotiated over TLS.
		var tlsCfg *tls.Config
		if cfg.tls != nil {
			tlsCfg = cfg.tls.Clone()
			tlsCfg.NextProtos = []string{"h2"}
		}
		l, addr, err := listen(ctx, spec, tlsCfg)
		if err != nil {
			d.closeListeners()
			return nil, fmt.Errorf("--buildkit-addr: %w", err)
		}
		d.bkListeners = append(d.bkListeners, l)
		d.bkHosts = append(d.bkHosts, addr)
		if spec.network == "tcp" && (cfg.tls == nil || cfg.tls.ClientAuth != tls.RequireAndVerifyClientCert) && !isLoopback(l.Addr()) {
			lg.Warnf("BuildKit listener %s accepts builds from anyone who can reach it: use --tlsverify (--auth-token-file does not cover gRPC clients)", addr)
		}
	}
	return d, nil
}

// start serves h on every listener, and bk's gRPC API on the BuildKit listeners.
func (d *daemon) start(h http.Handler, bk *buildkitapi.Server) {
	d.bk = bk
	d.watchTerm()
	// The base context ends with apiserver.ErrShutdown as its cause when the server
	// stops, so running builds are cancelled and can tell their clients why.
	base, cancel := context.WithCancelCause(context.Background())
	w := d.log.WriterLevel(logrus.WarnLevel)
	d.cancelBuilds, d.logWriter = cancel, w
	d.srv = &http.Server{
		Handler: h,
		// Slow or idle clients must not hold connections forever; there is no write or
		// read timeout because build contexts upload and builds stream for as long as
		// they take.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		// TLS handshake failures and the like, from net/http itself.
		ErrorLog: log.New(w, "", 0),
	}
	for i, l := range d.listeners {
		d.log.Infof("Listening on %s", d.hosts[i])
		go func() {
			if err := d.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.errc <- fmt.Errorf("serving %s: %w", d.hosts[i], err)
			}
		}()
	}
	for i, l := range d.bkListeners {
		d.log.Infof("Serving BuildKit's API on %s", d.bkHosts[i])
		go func() {
			if err := bk.Serve(l); err != nil {
				d.errc <- fmt.Errorf("serving %s: %w", d.bkHosts[i], err)
			}
		}()
	}
}

// wait serves until ctx ends or a listener fails, then shuts down: listeners close
// (removing unix sockets), running builds are cancelled, and their requests get
// shutdownGrace to clean up.
func (d *daemon) wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		if d.terminated() {
			d.drain()
		} else {
			d.log.Info("Shutting down: cancelling running builds")
		}
	case err = <-d.errc:
		d.log.WithError(err).Error("Shutting down")
	}
	d.cancelBuilds(apiserver.ErrShutdown)
	if d.bk != nil {
		d.bk.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serr := d.srv.Shutdown(sctx); serr != nil {
		d.log.WithError(serr).Warn("Requests still running after the grace period: closing their connections")
		_ = d.srv.Close()
	}
	d.closeListeners() // Shutdown closed them; this removes what a failed Serve left
	d.ops.close()
	if d.term != nil {
		signal.Stop(d.term)
	}
	_ = d.logWriter.Close()
	if d.stateLock != nil {
		_ = d.stateLock.Close()
	}
	return err
}

// closeListeners closes every listener, which removes the unix sockets.
func (d *daemon) closeListeners() {
	for _, l := range append(slices.Clone(d.listeners), d.bkListeners...) {
		_ = l.Close()
	}
}
