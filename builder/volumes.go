package builder

import (
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/snapshot"
)

// Docker's classic builder runs each RUN in a container with the image's VOLUMEs
// mounted: their mount points are created in the container (and so land in the RUN's
// layer), while what the command writes below them goes to a throw-away volume and
// never reaches the image. kiln creates the mount points the same way and leaves
// changes below them out of the layer.

// volumePaths returns the stage's volumes as cleaned image paths, sorted.
func (s *stage) volumePaths() []string {
	var out []string
	for v := range s.state.config.Config.Volumes {
		out = append(out, path.Clean("/"+v))
	}
	sort.Strings(out)
	return out
}

// createVolumeMountPoints makes sure every volume's directory exists before a RUN and
// returns the volumes that already existed: those are covered by the volume during the
// RUN, so not even their own metadata can change in the image.
func (s *stage) createVolumeMountPoints() ([]string, error) {
	var existed []string
	for _, v := range s.volumePaths() {
		created, err := s.mkdirAll(v, nil)
		if err != nil {
			return nil, err
		}
		if len(created) == 0 {
			existed = append(existed, v)
		}
	}
	return existed, nil
}

// withoutVolumeContents drops changes strictly below a volume path, and changes to the
// volume directories that existed before the RUN.
func withoutVolumeContents(ch *snapshot.Changes, volumes, existed []string) *snapshot.Changes {
	if len(volumes) == 0 {
		return ch
	}
	keep := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			if !belowAny(p, volumes) && !slices.Contains(existed, p) {
				out = append(out, p)
			}
		}
		return out
	}
	return &snapshot.Changes{Changed: keep(ch.Changed), Deleted: keep(ch.Deleted), Opaque: keep(ch.Opaque)}
}

// belowAny reports whether p lies strictly below one of dirs.
func belowAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if d == "/" {
			if p != "/" {
				return true
			}
			continue
		}
		if strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}
