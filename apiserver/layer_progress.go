package apiserver

import (
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// progressStep is how many bytes pass between two byte-count messages of a layer.
const progressStep = 1 << 20

// layerProgress renders the layer messages of a push or a pull as dockerd does: a
// byte-count message (reading: "Pushing", "Downloading") every progressStep bytes
// while a layer's compressed stream is read, readDone once it has been read to the
// end, and closedDone once a stream read whole is closed. Which layers were never
// opened (the registry or the store already had them) is known afterwards. It is
// safe for concurrent use: layers move in parallel.
type layerProgress struct {
	out                           *stream
	reading, readDone, closedDone string

	mu       sync.Mutex
	opened   map[string]bool // layers whose stream was opened
	reported map[string]bool // layers with a final message
}

// newPushProgress renders a push as dockerd's pusher: "Preparing" for every layer,
// "Pushing" with byte counts, "Pushed", and "Layer already exists" for the layers
// go-containerregistry never opened.
func newPushProgress(out *stream) *layerProgress {
	return &layerProgress{out: out, reading: "Pushing", closedDone: "Pushed",
		opened: map[string]bool{}, reported: map[string]bool{}}
}

// newPullProgress renders a pull as dockerd's puller: "Pulling fs layer" for each,
// "Downloading" with byte counts, "Download complete", then "Pull complete", and
// "Already exists" for the layers the store had (never opened).
func newPullProgress(out *stream) *layerProgress {
	return &layerProgress{out: out, reading: "Downloading", readDone: "Download complete",
		opened: map[string]bool{}, reported: map[string]bool{}}
}

// wrap returns img with layers that report being read, and the layers' short IDs (12
// hex digits of the hash idOf gives: dockerd's pusher names layers by diff ID, its
// puller by blob digest), bottom layer first.
func (p *layerProgress) wrap(img v1.Image, idOf func(v1.Layer) (v1.Hash, error)) (v1.Image, []string, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	wrapped := make([]v1.Layer, len(layers))
	ids := make([]string, len(layers))
	for i, l := range layers {
		h, err := idOf(l)
		if err != nil {
			return nil, nil, err
		}
		ids[i] = shortLayerID(h)
		wrapped[i] = &progressLayer{Layer: l, id: ids[i], p: p}
	}
	return &pushedImage{Image: img, layers: wrapped}, ids, nil
}

func layerDiffID(l v1.Layer) (v1.Hash, error) { return l.DiffID() }
func layerDigest(l v1.Layer) (v1.Hash, error) { return l.Digest() }

func shortLayerID(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}

// status sends one message about layer id.
func (p *layerProgress) status(id, status string) {
	p.out.send(message{Status: status, ProgressDetail: &progressDetail{}, ID: id})
}

func (p *layerProgress) started(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opened[id] = true
}

// wasOpened reports whether layer id's stream was read.
func (p *layerProgress) wasOpened(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened[id]
}

// final sends a layer's last message once, however often the layer is read.
func (p *layerProgress) final(id, status string) {
	p.mu.Lock()
	done := p.reported[id]
	p.reported[id] = true
	p.mu.Unlock()
	if !done {
		p.status(id, status)
	}
}

// finish sends the last message of a layer that is in place: opened says it moved,
// otherwise it was there already.
func (p *layerProgress) finish(id, opened, there string) {
	if p.wasOpened(id) {
		if opened != "" {
			p.final(id, opened)
		}
		return
	}
	p.final(id, there)
}

// progressLayer reports the reading of its compressed stream, which is opened only
// for a blob that has to move.
type progressLayer struct {
	v1.Layer
	id string
	p  *layerProgress
}

func (l *progressLayer) Compressed() (io.ReadCloser, error) {
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
	return &progressReader{rc: rc, layer: l, total: size, next: progressStep}, nil
}

// progressReader counts a layer's bytes as they are read.
type progressReader struct {
	rc    io.ReadCloser
	layer *progressLayer
	total int64
	n     int64
	next  int64
	ended bool
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rc.Read(b)
	r.n += int64(n)
	p := r.layer.p
	if r.n >= r.next {
		p.out.send(message{Status: p.reading, ProgressDetail: &progressDetail{Current: r.n, Total: r.total}, ID: r.layer.id})
		r.next = r.n + progressStep
	}
	if err == io.EOF && !r.ended {
		r.ended = true
		if p.readDone != "" {
			p.status(r.layer.id, p.readDone)
		}
	}
	return n, err
}

func (r *progressReader) Close() error {
	err := r.rc.Close()
	if p := r.layer.p; r.n >= r.total && p.closedDone != "" {
		p.final(r.layer.id, p.closedDone)
	}
	return err
}
