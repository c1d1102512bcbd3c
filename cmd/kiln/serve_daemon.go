package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/apiserver"
)

// daemon is a running `kiln serve`: one HTTP server on every listener.
type daemon struct {
	log       *logrus.Logger
	srv       *http.Server
	listeners []net.Listener
	// hosts are the listeners' addresses as DOCKER_HOST values, in -H order.
	hosts []string
	// cancelBuilds cancels the context every request's context derives from.
	cancelBuilds context.CancelCauseFunc
	// errc receives the first listener that fails.
	errc      chan error
	logWriter io.Closer
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
	return d, nil
}

// start serves h on every listener.
func (d *daemon) start(h http.Handler) {
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
}

// wait serves until ctx ends or a listener fails, then shuts down: listeners close
// (removing unix sockets), running builds are cancelled, and their requests get
// shutdownGrace to clean up.
func (d *daemon) wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		d.log.Info("Shutting down: cancelling running builds")
	case err = <-d.errc:
		d.log.WithError(err).Error("Shutting down")
	}
	d.cancelBuilds(apiserver.ErrShutdown)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serr := d.srv.Shutdown(sctx); serr != nil {
		d.log.WithError(serr).Warn("Requests still running after the grace period: closing their connections")
		_ = d.srv.Close()
	}
	d.closeListeners() // Shutdown closed them; this removes what a failed Serve left
	_ = d.logWriter.Close()
	return err
}

// closeListeners closes every listener, which removes the unix sockets.
func (d *daemon) closeListeners() {
	for _, l := range d.listeners {
		_ = l.Close()
	}
}
