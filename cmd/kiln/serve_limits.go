package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
)

// inputLimitFlags are kiln serve's limits on what a client controls (builder.InputLimits, and the
// decompression ratio of context archives): docs/security.md, "Limits on client input".
type inputLimitFlags struct {
	maxDockerfileSize string
	maxInstructions   int
	maxLayers         int
	maxAddSize        string
	maxRatio          int64
}

func addInputLimitFlags(fs *pflag.FlagSet, f *inputLimitFlags) {
	fs.StringVar(&f.maxDockerfileSize, "max-dockerfile-size", "1MiB", "Largest Dockerfile a build may have: bytes or a size such as 64KiB.")
	fs.IntVar(&f.maxInstructions, "max-instructions", builder.DefaultMaxInstructions, "Most instructions a Dockerfile may hold, all stages counted; 0 means no limit.")
	fs.IntVar(&f.maxLayers, "max-layers", builder.DefaultMaxLayers, "Most layers an image a build makes may have, its base's counted (dockerd refuses more than 125); 0 means no limit.")
	fs.StringVar(&f.maxAddSize, "max-add-size", "32GiB", "Most an archive ADD extracts may expand to: bytes or a size such as 4GiB.")
	fs.Int64Var(&f.maxRatio, "max-decompression-ratio", builder.DefaultMaxArchiveRatio, "Most times a compressed build context or ADD archive may expand its compressed size (checked past its first 64 MiB), which stops decompression bombs early; 0 means no limit.")
}

// limits turns the flags into the engine's limits and the context archives' ratio.
func (f inputLimitFlags) limits() (builder.InputLimits, int64, error) {
	var l builder.InputLimits
	var err error
	if l.MaxDockerfileBytes, err = parseSize(f.maxDockerfileSize); err != nil {
		return l, 0, fmt.Errorf("--max-dockerfile-size: %w", err)
	}
	if l.MaxArchiveBytes, err = parseSize(f.maxAddSize); err != nil {
		return l, 0, fmt.Errorf("--max-add-size: %w", err)
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"--max-instructions", int64(f.maxInstructions)}, {"--max-layers", int64(f.maxLayers)}, {"--max-decompression-ratio", f.maxRatio}} {
		if v.n < 0 {
			return l, 0, fmt.Errorf("%s %d: must be 0 (no limit) or more", v.name, v.n)
		}
	}
	// builder.InputLimits: 0 takes the default, a negative value is unlimited.
	unlimited := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	l.MaxInstructions = int(unlimited(int64(f.maxInstructions)))
	l.MaxLayers = int(unlimited(int64(f.maxLayers)))
	l.MaxArchiveRatio = unlimited(f.maxRatio)
	return l, f.maxRatio, nil
}
