package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kiln-build/kiln/builder"
)

// metrics is kiln serve's Prometheus metrics: the builder.Observer every build of
// every front door reports to, and gauges read from the queue when scraped. It has a
// registry of its own (no package-level state): /metrics serves exactly these plus
// the Go runtime's and the process's.
type metrics struct {
	reg *prometheus.Registry

	started   prometheus.Counter
	finished  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	steps     *prometheus.HistogramVec
	phases    *prometheus.HistogramVec
	running   prometheus.Gauge
	queueWait prometheus.Histogram
	cacheHits *prometheus.CounterVec
	cacheMiss *prometheus.CounterVec
	bytes     map[string]prometheus.Counter
}

// buildBuckets span a cached rebuild (a second) to a long CI build (an hour).
var buildBuckets = []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}

// newMetrics registers kiln's metrics. The queue length and drain state are read
// when scraped.
func newMetrics(queued func() int, draining func() bool) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.started = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kiln_builds_started_total", Help: "Builds started, by every front door (/build, BuildKit solves).",
	})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_builds_finished_total", Help: "Builds finished, by result: success, user_error, run_failed, registry_error, infra_error.",
	}, []string{"result"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kiln_build_duration_seconds", Help: "How long builds took (from the build slot to the image, before storing or pushing), by result.",
		Buckets: buildBuckets,
	}, []string{"result"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kiln_step_duration_seconds", Help: "How long Dockerfile instructions took, by instruction (from, run, copy, ...), cached ones included.",
		Buckets: []float64{0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1200},
	}, []string{"instruction"})
	m.phases = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kiln_build_phase_seconds", Help: "Where builds spent their time, by phase (context, base, run, snapshot, layer, compress, copy, cache, export: see docs/performance.md), per build; export is not in it (it follows the build).",
		Buckets: []float64{0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1200},
	}, []string{"phase"})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kiln_builds_running", Help: "Builds running now.",
	})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kiln_queue_wait_seconds", Help: "How long builds waited for a build slot.",
		Buckets: []float64{0.001, 0.1, 1, 5, 30, 60, 300, 900, 1800},
	})
	m.cacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_cache_hits_total", Help: "Cache lookups that hit, by kind: step (the step cache), base-layer (the base-image cache).",
	}, []string{"kind"})
	m.cacheMiss = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_cache_misses_total", Help: "Cache lookups that missed, by kind: step, base-layer.",
	}, []string{"kind"})
	m.bytes = map[string]prometheus.Counter{
		builder.TransferPulled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_pulled_bytes_total", Help: "Bytes of base-image layers downloaded from registries.",
		}),
		builder.TransferPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_pushed_bytes_total", Help: "Bytes of layers uploaded to registries.",
		}),
		builder.TransferContext: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_context_received_bytes_total", Help: "Bytes of build contexts received from clients (/build bodies, as sent).",
		}),
	}
	m.reg.MustRegister(m.started, m.finished, m.duration, m.steps, m.phases, m.running, m.queueWait, m.cacheHits, m.cacheMiss,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range m.bytes {
		m.reg.MustRegister(c)
	}
	// Every result and cache kind is exported from the start, at 0, so that rate()
	// and alerts see a series before its first event.
	for _, c := range builder.Classes {
		m.finished.WithLabelValues(string(c))
	}
	for _, k := range []string{builder.CacheKindStep, builder.CacheKindBaseLayer} {
		m.cacheHits.WithLabelValues(k)
		m.cacheMiss.WithLabelValues(k)
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kiln_queue_length", Help: "Builds waiting for a build slot.",
	}, func() float64 { return float64(queued()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kiln_draining", Help: "1 while the server drains (SIGTERM): it accepts no new builds.",
		}, func() float64 {
			if draining() {
				return 1
			}
			return 0
		}))
	return m
}

// BuildStarted counts a build and marks it running.
func (m *metrics) BuildStarted() {
	m.started.Inc()
	m.running.Inc()
}

// BuildFinished counts a build's end by result.
func (m *metrics) BuildFinished(c builder.Classification, d time.Duration) {
	m.running.Dec()
	m.finished.WithLabelValues(string(c.Class)).Inc()
	m.duration.WithLabelValues(string(c.Class)).Observe(d.Seconds())
}

// StepFinished records an instruction's duration.
func (m *metrics) StepFinished(instruction string, d time.Duration) {
	m.steps.WithLabelValues(instruction).Observe(d.Seconds())
}

// PhaseFinished records a finished build's time in one phase (builder.PhaseObserver).
func (m *metrics) PhaseFinished(phase string, d time.Duration) {
	m.phases.WithLabelValues(phase).Observe(d.Seconds())
}

// CacheLookup counts a hit or a miss.
func (m *metrics) CacheLookup(kind string, hit bool) {
	if hit {
		m.cacheHits.WithLabelValues(kind).Inc()
	} else {
		m.cacheMiss.WithLabelValues(kind).Inc()
	}
}

// Transferred counts bytes by direction.
func (m *metrics) Transferred(direction string, n int64) {
	if c, ok := m.bytes[direction]; ok && n > 0 {
		c.Add(float64(n))
	}
}

// QueueWaited records a build's wait for its slot.
func (m *metrics) QueueWaited(d time.Duration) { m.queueWait.Observe(d.Seconds()) }

// pushedBytes is output.PushConfig.Pushed for obs: nil when there is no observer.
func pushedBytes(obs builder.Observer) func(int64) {
	if obs == nil {
		return nil
	}
	return func(n int64) { obs.Transferred(builder.TransferPushed, n) }
}
