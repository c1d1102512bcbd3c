package builder

import v1 "github.com/google/go-containerregistry/pkg/v1"

// An Event reports build progress. The builder never writes to a terminal or an HTTP
// stream itself: front doors render events (Docker JSON messages, log lines).
// Event is a closed set: the concrete types below.
type Event interface{ event() }

// StepStarted is sent before each instruction runs, FROM included. Step counts from 1
// over all instructions of all stages that are built, as Docker's "Step N/M" does.
type StepStarted struct {
	Step, Total int
	Stage       string // stage name or index
	Line        int    // 1-based Dockerfile line
	Text        string // the instruction as written, e.g. "RUN make"

	// StageIndex is the stage's index in the Dockerfile, Stages how many it has.
	// StageStep and StageTotal number the stage's steps as BuildKit does ("[stage
	// 2/5]"): FROM and the instructions that change the filesystem (RUN, COPY, ADD,
	// WORKDIR); StageStep is 0 for the others, which only change the config.
	StageIndex, Stages    int
	StageStep, StageTotal int
}

// StepDone is sent after an instruction succeeded, with the ID of the image as it
// stands after the step (Docker prints it as " ---> <id>").
type StepDone struct {
	Step    int
	ImageID v1.Hash
}

// Output is a chunk of a RUN's output.
type Output struct {
	Step   int
	Stderr bool
	Data   []byte
}

// Running is sent when a RUN process starts (Docker prints " ---> Running in <id>").
type Running struct {
	Step int
	ID   string
}

// LayerWritten is sent when an instruction produced a layer.
type LayerWritten struct {
	Step   int
	Digest v1.Hash
	Size   int64
	Files  int
}

// CacheHit is sent when a step was taken from the build cache instead of being run
// (Docker prints " ---> Using cache"; kaniko logs "Using caching version of cmd").
type CacheHit struct {
	Step int
	Text string // the instruction as written
}

// CacheMiss is sent when a step had to run although a cache was configured, with the
// reason as far as the builder can tell: which file, build arg or base image changed,
// or that there was no entry at all.
type CacheMiss struct {
	Step   int
	Text   string // the instruction as written
	Reason string
}

// Warning is a non-fatal problem, e.g. build args that no ARG consumed.
type Warning struct {
	Message string
}

// Info is a progress message worth showing at normal verbosity (pulls, stage starts).
type Info struct {
	Message string
}

// Debug is detail for --verbosity=debug.
type Debug struct {
	Message string
}

func (StepStarted) event()  {}
func (StepDone) event()     {}
func (Output) event()       {}
func (Running) event()      {}
func (LayerWritten) event() {}
func (CacheHit) event()     {}
func (CacheMiss) event()    {}
func (Warning) event()      {}
func (Info) event()         {}
func (Debug) event()        {}
