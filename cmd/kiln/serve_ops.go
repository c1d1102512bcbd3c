package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/builder"
)

// opsServer is the --metrics-addr listener: /metrics for Prometheus, /healthz and
// /readyz for probes. It is separate from the Docker API listeners so that probes
// and scrapers need no Docker API credentials, and it stays up while the server
// drains, so a probe sees /readyz turn false.
type opsServer struct {
	spec    hostSpec
	metrics *metrics
	log     *logrus.Logger

	// queue is the server's build queue, set once it exists.
	queue *builder.Queue
	// stateDir must be writable and storeDir readable for /readyz.
	stateDir, storeDir string

	srv  *http.Server
	l    net.Listener
	addr string
}

// newOpsServer parses --metrics-addr and makes the metrics; nil when the flag is
// empty.
func newOpsServer(addr string, lg *logrus.Logger) (*opsServer, error) {
	if addr == "" {
		return nil, nil
	}
	spec, err := parseHost(addr, false)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	o := &opsServer{spec: spec, log: lg}
	o.metrics = newMetrics(
		func() int {
			if o.queue == nil {
				return 0
			}
			return o.queue.Waiting()
		},
		func() bool { return o.queue != nil && o.queue.Draining() })
	return o, nil
}

// handler routes the probes and /metrics.
func (o *opsServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeProbe(w, nil)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		writeProbe(w, o.ready())
	})
	return mux
}

// ready says why the server should get no new builds, or nil: it drains, its image
// store cannot be read, or its state directory cannot be written.
func (o *opsServer) ready() error {
	if o.queue == nil {
		return errors.New("starting")
	}
	if o.queue.Draining() {
		return errors.New("draining: the server is shutting down and accepts no new builds")
	}
	if _, err := os.Stat(o.storeDir); err != nil {
		return fmt.Errorf("the image store: %w", err)
	}
	f, err := os.CreateTemp(o.stateDir, ".readyz-*")
	if err != nil {
		return fmt.Errorf("the state directory is not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("the state directory: %w", err)
	}
	return nil
}

// writeProbe answers a probe: 200 {"status":"ok"}, or 503 with the reason.
func writeProbe(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "reason": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
}

// listen opens the listener; serve then answers on it until close.
func (o *opsServer) listen(ctx context.Context) error {
	l, addr, err := listen(ctx, o.spec, nil)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	o.l, o.addr = l, addr
	return nil
}

// serve answers on the listener in the background.
func (o *opsServer) serve() {
	o.srv = &http.Server{Handler: o.handler(), ReadHeaderTimeout: 10 * time.Second}
	o.log.Infof("Serving /metrics, /healthz and /readyz on %s", o.addr)
	go func() {
		if err := o.srv.Serve(o.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.WithError(err).Error("The metrics listener failed")
		}
	}()
}

// close stops the listener (removing a unix socket).
func (o *opsServer) close() {
	if o == nil {
		return
	}
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.srv.Shutdown(ctx)
	}
	if o.l != nil {
		_ = o.l.Close()
	}
}
