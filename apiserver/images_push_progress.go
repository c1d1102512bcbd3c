package apiserver

import (
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pushProgressStep is how many bytes pass between two "Pushing" messages of a layer.
const pushProgressStep = 1 << 20

// pushProgress renders one push's layer messages as dockerd's pusher does:
// "Preparing" for every layer, "Pushing" with byte counts while one uploads,
// "Pushed" when it has, and "Layer already exists" for the ones the registry had (the
// layers go-containerregistry never opened). It is safe for concurrent use: layers
// upload in parallel.
type pushProgress struct {
	out *stream

	mu       sync.Mutex
	opened   map[string]bool // layers whose upload started
	reported map[string]bool // layers with a final message
}

func newPushProgress(out *stream) *pushProgress {
	return &pushProgress{out: out, opened: map[string]bool{}, reported: map[string]bool{}}
}

// wrap returns img with reporting layers and the layers' short IDs (12 hex digits of
// the diff ID), bottom layer first.
func (p *pushProgress) wrap(img v1.Image) (v1.Image, []string, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	wrapped := make([]v1.Layer, len(layers))
	ids := make([]string, len(layers))
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, nil, err
		}
		ids[i] = shortLayerID(diffID)
		wrapped[i] = &reportingLayer{Layer: l, id: ids[i], p: p}
	}
	return &pushedImage{Image: img, layers: wrapped}, ids, nil
}

func shortLayerID(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}

func (p *pushProgress) status(id, status string, detail *progressDetail) {
	p.out.send(message{Status: status, ProgressDetail: detail, ID: id})
}

func (p *pushProgress) prepare(id string) { p.status(id, "Preparing", &progressDetail{}) }

func (p *pushProgress) started(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opened[id] = true
}

func (p *pushProgress) pushing(id string, current, total int64) {
	p.status(id, "Pushing", &progressDetail{Current: current, Total: total})
}

// final sends a layer's last message once, however often the layer is read.
func (p *pushProgress) final(id, status string) {
	p.mu.Lock()
	done := p.reported[id]
	p.reported[id] = true
	p.mu.Unlock()
	if !done {
		p.status(id, status, &progressDetail{})
	}
}

// alreadyThere reports a layer the push never had to upload.
func (p *pushProgress) alreadyThere(id string) {
	p.mu.Lock()
	opened := p.opened[id]
	p.mu.Unlock()
	if !opened {
		p.final(id, "Layer already exists")
	}
}

// reportingLayer reports the reading of its compressed stream, which
// go-containerregistry opens only to upload it.
type reportingLayer struct {
	v1.Layer
	id string
	p  *pushProgress
}

func (l *reportingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	size, err := l.Layer.Size()
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	l.p.started(l.id)
	return &reportingReader{rc: rc, layer: l, total: size, next: pushProgressStep}, nil
}

// reportingReader counts an upload; read to the end and closed, the layer is pushed.
type reportingReader struct {
	rc    io.ReadCloser
	layer *reportingLayer
	total int64
	n     int64
	next  int64
}

func (r *reportingReader) Read(b []byte) (int, error) {
	n, err := r.rc.Read(b)
	r.n += int64(n)
	if r.n >= r.next {
		r.layer.p.pushing(r.layer.id, r.n, r.total)
		r.next = r.n + pushProgressStep
	}
	return n, err
}

func (r *reportingReader) Close() error {
	err := r.rc.Close()
	if r.n >= r.total {
		r.layer.p.final(r.layer.id, "Pushed")
	}
	return err
}
