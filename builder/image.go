package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// defaultPath is the PATH Docker gives images built FROM scratch and containers whose
// image has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageState is a stage's image as it is being built: its config file (with history
// and diff IDs kept in step with layers) and its layers, base layers first.
type imageState struct {
	config v1.ConfigFile
	layers []v1.Layer
	// chain, when set, is the state's cache identity in place of its content: see
	// identity and stage.execute.
	chain v1.Hash
}

// scratchState is the state FROM scratch starts with.
func scratchState(platform v1.Platform) *imageState {
	return &imageState{config: v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		Variant:      platform.Variant,
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{Env: []string{defaultPath}},
	}}
}

// clone returns a deep copy whose mutations do not affect s.
func (s *imageState) clone() *imageState {
	return &imageState{
		config: *s.config.DeepCopy(),
		layers: append([]v1.Layer(nil), s.layers...),
		chain:  s.chain,
	}
}

// addHistory records an instruction that produced no layer.
func (s *imageState) addHistory(createdBy string, created time.Time) {
	s.config.History = append(s.config.History, v1.History{
		Created:    v1.Time{Time: created},
		CreatedBy:  createdBy,
		EmptyLayer: true,
	})
}

// addLayer appends a layer with its history entry.
func (s *imageState) addLayer(l v1.Layer, createdBy string, created time.Time) error {
	diffID, err := l.DiffID()
	if err != nil {
		return err
	}
	s.layers = append(s.layers, l)
	s.config.RootFS.DiffIDs = append(s.config.RootFS.DiffIDs, diffID)
	s.config.History = append(s.config.History, v1.History{
		Created:   v1.Time{Time: created},
		CreatedBy: createdBy,
	})
	return nil
}

// id is the image ID the state would have now: the sha256 of its config file.
func (s *imageState) id() v1.Hash {
	raw, err := json.Marshal(&s.config)
	if err != nil {
		return v1.Hash{}
	}
	sum := sha256.Sum256(raw)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// image assembles the immutable ggcr image: a Docker schema 2 manifest over the state's
// layers (an OCI one when a layer needs it, see mediaTypes), with the state's config file.
func (s *imageState) image(created time.Time) (v1.Image, error) {
	manifestType, configType, layerTypes, err := mediaTypes(s.layers)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, manifestType)
	img = mutate.ConfigMediaType(img, configType)
	adds := make([]mutate.Addendum, 0, len(s.layers))
	for i, l := range s.layers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: layerTypes[i]})
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("assembling image: %w", err)
	}
	cf := s.config.DeepCopy()
	if cf.Created.IsZero() {
		cf.Created = v1.Time{Time: created}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("assembling image config: %w", err)
	}
	return img, nil
}
