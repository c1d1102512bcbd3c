package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// run executes a RUN instruction in the stage's root and snapshots what it changed.
func (s *stage) run(ctx context.Context, c *instructions.RunCommand) error {
	if flags := slices.DeleteFunc(slices.Clone(c.FlagsUsed), func(f string) bool {
		return f == "mount" || f == "network" || f == "security"
	}); len(flags) > 0 {
		return fmt.Errorf("RUN --%s: %w", strings.Join(flags, ", --"), ErrUnsupported)
	}
	noNetwork, insecure, err := s.runSandbox(c)
	if err != nil {
		return err
	}
	args, script, err := s.runArgs(c)
	if err != nil {
		return err
	}
	if err := s.materialise(ctx); err != nil {
		return err
	}
	cfg := &s.state.config.Config
	user, err := resolveUser(s.root, cfg.User)
	if err != nil {
		return err
	}
	if err := isolation.CheckOwner(user.UID, user.GID); err != nil {
		return fmt.Errorf("USER %s: %w", cfg.User, err)
	}
	workdir := cfg.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	mounts, err := runMounts(c, workdir)
	if err != nil {
		return err
	}
	if _, err := s.mkdirAll(workdir, nil); err != nil {
		return err
	}
	existingVolumes, err := s.createVolumeMountPoints()
	if err != nil {
		return err
	}

	buildArgs := s.b.args.stageArgs(cfg.Env, false)
	id := randomID()
	hostname := s.hostname
	if hostname == "" {
		hostname, _ = os.Hostname() // in place, RUN shares the container's host name
	}
	env := runEnv(cfg.Env, buildArgs, user.Home, hostname)
	// Secrets and agents are fetched after the cache missed and live only for this
	// process: in its environment and at its mount targets, never in the image.
	pm, err := s.prepareMounts(ctx, mounts, env, s.b.tmpDir)
	if err != nil {
		return err
	}
	defer pm.close()
	for _, kv := range pm.env {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	if script != nil {
		p, err := script.write(s.b.tmpDir)
		if err != nil {
			return fmt.Errorf("writing the here-document %s: %w", script.name, err)
		}
		defer os.RemoveAll(filepath.Dir(p))
		pm.mounts = append(pm.mounts, isolation.Mount{Source: p, Target: heredocPipes + script.name, ReadOnly: true})
	}
	s.b.emit(Running{Step: s.step, ID: id[:12]})
	var mu sync.Mutex // the runner may write stdout and stderr from two goroutines
	runStart := time.Now()
	err = s.runner.Run(ctx, isolation.Process{
		Args:   args,
		Env:    env,
		Dir:    workdir,
		UID:    uint32(user.UID),
		GID:    uint32(user.GID),
		Groups: toUint32(user.Groups),
		Stdout: &outputWriter{mu: &mu, emit: s.b.emit, step: s.step},
		Stderr: &outputWriter{mu: &mu, emit: s.b.emit, step: s.step, stderr: true},
		Mounts: pm.mounts,

		NoNetwork: noNetwork,
		Insecure:  insecure,
		Limits:    s.b.limits,
	})
	s.b.phases.Since(PhaseRun, runStart)
	pm.close() // before the snapshot: no agent proxy outlives its RUN
	if aerr := pm.agentError(); aerr != nil {
		// Emitted here, not by the proxy: events come from the build's goroutine.
		s.b.emit(Warning{Message: fmt.Sprintf("The RUN could not reach its SSH agent: %v", aerr)})
	}
	if err != nil {
		var ee *isolation.ExitError
		if errors.As(err, &ee) {
			re := &RunError{Args: args, Code: ee.Code, Err: err}
			var se *isolation.StartError
			if errors.As(err, &se) {
				re.Reason = se.Message
				if errors.Is(err, syscall.ENOEXEC) {
					re.Reason += ": " + execFormatNote(s.state.config.Platform(), hostPlatform())
				}
			}
			return re
		}
		return err
	}
	history := strings.Join(args, " ")
	if len(c.Files) > 0 {
		history = heredocRunHistory(args, s.b.args.historyArgs(cfg.Env))
	} else if hist := s.b.args.stageArgs(cfg.Env, true); len(hist) > 0 {
		sort.Strings(hist)
		history = fmt.Sprintf("|%d %s %s", len(hist), strings.Join(hist, " "), history)
	}
	if s.b.req.SingleSnapshot {
		return s.commit(history)
	}
	return s.snapshot(ctx, history, existingVolumes)
}

// runSandbox reads RUN --network and --security. --network=default and host run in
// the server's network, as every RUN does; none gets a network namespace of its own
// with only loopback, which needs chroot isolation. --security=sandbox is the default;
// insecure keeps every capability and needs Workspace.AllowInsecure.
func (s *stage) runSandbox(c *instructions.RunCommand) (noNetwork, insecure bool, err error) {
	if s.noNetwork(c) {
		if s.b.ws.Isolation == isolation.InPlace && !s.b.ws.InPlaceNamespaces {
			what := "RUN --network=none"
			if instructions.GetNetwork(c) != instructions.NetworkNone {
				what = "the build's network mode none"
			}
			return false, false, fmt.Errorf("%s needs --isolation=chroot, or in-place namespaces (--inplace-namespaces, which this kernel or container refused): "+
				"without them in-place isolation runs RUN in the server's own namespaces and cannot take its network away", what)
		}
		noNetwork = true
	}
	if instructions.GetSecurity(c) == instructions.SecurityInsecure {
		if !s.b.ws.AllowInsecure {
			return false, false, fmt.Errorf("RUN --security=insecure is not allowed: " +
				"kiln build and kiln serve grant it with --allow-insecure-entitlement=security.insecure")
		}
		insecure = true
	}
	return noNetwork, insecure, nil
}

// noNetwork says whether RUN c runs without network: RUN --network=none, or the
// build's Request.NoNetwork unless the RUN asks for --network=host (BuildKit applies
// the build's mode as the default a RUN's own --network overrides).
func (s *stage) noNetwork(c *instructions.RunCommand) bool {
	switch instructions.GetNetwork(c) {
	case instructions.NetworkNone:
		return true
	case instructions.NetworkHost:
		return false
	}
	return s.b.req.NoNetwork
}

// RunError is a RUN whose command failed. Its exit code is the build's exit code.
type RunError struct {
	Args []string
	Code int
	// Reason says why the command could not be started at all (its program missing,
	// not executable, or for another architecture); empty when it ran and failed.
	Reason string
	Err    error
}

func (e *RunError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("The command '%s' could not be run: %s", strings.Join(e.Args, " "), e.Reason)
	}
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(e.Args, " "), e.Code)
}

// execFormatNote explains an exec format error (ENOEXEC) of a RUN in an image for
// platform (nil: the image does not say) on a machine running host.
func execFormatNote(platform *v1.Platform, host v1.Platform) string {
	if platform == nil || platform.Architecture == "" {
		return fmt.Sprintf("the program is not one this machine (%s) can run", formatPlatform(host))
	}
	if platformRank(host, *platform) >= 0 {
		return fmt.Sprintf("the program is not one this machine can run, although the image says it is for %s",
			formatPlatform(*platform))
	}
	return fmt.Sprintf("the image is %s and this machine runs %s without an emulator registered in binfmt_misc "+
		"(register one, e.g. with Debian's qemu-user-static, or build on a %s machine)",
		formatPlatform(*platform), formatPlatform(host), formatPlatform(*platform))
}

func (e *RunError) Unwrap() error { return e.Err }

// snapshot diffs the root against the last record and, when something changed,
// writes a layer; either way the instruction is recorded in the history.
// existingVolumes are the volume directories that existed before a RUN (see volumes.go).
func (s *stage) snapshot(ctx context.Context, history string, existingVolumes []string) error {
	diffStart := time.Now()
	ch, files, err := s.files.Diff(ctx, s.root)
	s.b.phases.Since(PhaseSnapshot, diffStart)
	if err != nil {
		return fmt.Errorf("finding changes: %w", err)
	}
	s.files = files
	ch = withoutVolumeContents(ch, s.volumePaths(), existingVolumes)
	if ch.Empty() {
		s.state.addHistory(history, s.b.created)
		return nil
	}
	return s.writeLayer(ctx, ch, history)
}

// writeLayer writes the changes as a layer and appends it to the stage's image. The
// layer is a plain tar (its digest is its diff ID): compression is an output's
// business (output.Compressor), done only when the image leaves kiln, as BuildKit
// does, so a build with no output, or whose steps come from the cache, never pays it.
func (s *stage) writeLayer(ctx context.Context, ch *snapshot.Changes, history string, extra ...snapshot.LayerOption) error {
	writeStart := time.Now()
	sink := s.layerSink()
	if sink != nil {
		extra = append(extra, snapshot.WithTee(sink))
	}
	l, err := snapshot.WriteLayer(ctx, s.root, s.b.blobDir, ch, append([]snapshot.LayerOption{
		snapshot.WithLayerIgnore(s.b.ws.Ignore),
		snapshot.WithReproducible(s.b.req.Reproducible),
		// a step cache keeps the layer, and syncs it
		snapshot.WithWriteback(s.b.ws.Cache != nil),
		snapshot.WithCompression(snapshot.Uncompressed)}, extra...)...)
	if sink != nil {
		if err != nil {
			sink.Abort()
		} else if diffID, _ := l.DiffID(); sink.Commit(diffID) != nil {
			// The output compresses this layer itself, as without a sink.
			s.b.emit(Debug{Message: "Compressing the layer while writing it failed; it is compressed on output"})
		}
	}
	s.b.phases.Since(PhaseLayer, writeStart)
	if err != nil {
		return fmt.Errorf("writing layer: %w", err)
	}
	if err := s.state.addLayer(l, history, s.b.created); err != nil {
		return err
	}
	// The layer was made from the root: the root holds it already.
	s.extracted = len(s.state.layers)
	d, _ := l.Digest()
	sz, _ := l.Size()
	s.b.emit(LayerWritten{Step: s.step, Digest: d, Size: sz, Files: l.Files()})
	return nil
}

// layerSink returns the request's sink for the next layer, or nil: without
// LayerSinks, or when it fails (the output then compresses the layer itself).
func (s *stage) layerSink() LayerSink {
	if s.b.req.LayerSinks == nil {
		return nil
	}
	sink, err := s.b.req.LayerSinks()
	if err != nil || sink == nil {
		return nil
	}
	return sink
}

// mkdirAll creates an image directory path in the root (0755, owned by owner or
// root), returning the image paths it created.
func (s *stage) mkdirAll(imagePath string, owner *identity) ([]string, error) {
	var created []string
	cur := "/"
	for _, part := range strings.Split(strings.Trim(filepath.Clean(imagePath), "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		host, err := securejoin.SecureJoin(s.root, cur)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(host)
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("cannot create directory %s: %s is not a directory", imagePath, cur)
			}
			continue
		}
		if !os.IsNotExist(err) {
			return nil, err
		}
		if err := os.Mkdir(host, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(host, 0o755); err != nil {
			return nil, err
		}
		if owner != nil {
			if err := os.Lchown(host, owner.UID, owner.GID); err != nil {
				return nil, err
			}
		}
		created = append(created, cur)
	}
	return created, nil
}

// runEnv is a RUN process's environment: the image's Env with the stage's build args
// after it, plus what Docker adds to a container (PATH when missing, HOSTNAME set to the
// container's short ID, HOME).
func runEnv(imageEnv, buildArgs []string, home, hostname string) []string {
	env := append([]string(nil), imageEnv...)
	env = append(env, buildArgs...)
	if _, ok := getEnv(env, "PATH"); !ok {
		env = append([]string{defaultPath}, env...)
	}
	if _, ok := getEnv(env, "HOME"); !ok {
		env = append(env, "HOME="+home)
	}
	if _, ok := getEnv(env, "HOSTNAME"); !ok {
		env = append(env, "HOSTNAME="+hostname)
	}
	return env
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func toUint32(in []int) []uint32 {
	out := make([]uint32, len(in))
	for i, v := range in {
		out[i] = uint32(v)
	}
	return out
}

// outputWriter turns a RUN's output into Output events, one writer at a time.
type outputWriter struct {
	mu     *sync.Mutex
	emit   func(Event)
	step   int
	stderr bool
}

func (w *outputWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit(Output{Step: w.step, Stderr: w.stderr, Data: append([]byte(nil), p...)})
	return len(p), nil
}
