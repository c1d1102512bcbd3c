package builder

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder/copier"
	"github.com/kiln-build/kiln/contexts"
)

// How cache keys are made (docs/caching.md tells users the same):
//
// A step's key is the digest of
//   - the settings that shape every layer (--reproducible, the snapshot mode),
//   - the identity of the state the step starts from,
//   - the instruction after ARG/ENV expansion (its type and every field, flags and
//     here-document bodies included),
//   - the step's other inputs: for RUN the build args in scope with their values (the
//     ones Docker writes as "|N K=V" into history; proxy args are left out, as Docker
//     does); for COPY and ADD from the context, every selected path after .dockerignore
//     and wildcards with its type, mode, link target and content digest (not its mtime,
//     as Docker's classic builder); for COPY --from a stage, that stage's final identity;
//     for COPY --from an image, its image ID.
//
// A COPY --link or ADD --link step is the exception: its key holds only the working
// directory of the state it starts from (see linked), so its layer is reused on any base.
//
// A state's identity is the digest of its content, not of the steps that made it: the
// platform, the layers' diffIDs and the config fields a step's execution depends on
// (Env, User, WorkingDir, Shell, Volumes). This is the rule that keeps later steps
// hitting after a miss when their inputs provably did not change: a step that runs again
// and produces the same layer (or none) and the same config leaves the same identity, so
// the next step's key is the one it had before. Docker and kaniko chain keys from the
// previous key instead and stop hitting at the first miss. Config fields outside the
// identity (Labels, Cmd, ExposedPorts, ...) cannot change what RUN, COPY, ADD or WORKDIR
// do, and the instructions that set them are re-applied on a hit rather than copied.
//
// ADD of a URL is never cached: what it adds is only known once downloaded. It still
// runs cheaply into the rule: when the download gives the same layer, later steps hit.

// stepKey is where a step lives in the cache.
type stepKey struct {
	key    v1.Hash      // the entry: slot and inputs
	slot   v1.Hash      // the state the step starts from and its instruction
	inputs []CacheInput // what else the step reads, in order
}

// keyedFields are the config fields in a state's identity.
type keyedFields struct {
	Env        []string `json:",omitempty"`
	User       string   `json:",omitempty"`
	WorkingDir string   `json:",omitempty"`
	Shell      []string `json:",omitempty"`
	Volumes    []string `json:",omitempty"`
}

// keyedConfig returns the fields of c in a state's identity, empty lists as nil so
// that values read back from JSON compare equal.
func keyedConfig(c v1.Config) keyedFields {
	k := keyedFields{User: c.User, WorkingDir: c.WorkingDir}
	if len(c.Env) > 0 {
		k.Env = c.Env
	}
	if len(c.Shell) > 0 {
		k.Shell = c.Shell
	}
	for v := range c.Volumes {
		k.Volumes = append(k.Volumes, v)
	}
	sort.Strings(k.Volumes)
	return k
}

// identity is the digest of what the state holds as far as later steps can tell.
//
// Once a step the cache does not keep has run (kaniko's --cache-copy-layers=false),
// the state's content is new every build (a COPY stamps the directories it creates with
// the time), and content would make every later step miss. From that step on, the
// identity is chained from step keys instead, as kaniko and Docker chain theirs: the
// key of a step holds everything it reads, so equal keys mean equal inputs.
func (s *imageState) identity() v1.Hash {
	if s.chain != (v1.Hash{}) {
		return s.chain
	}
	doc := struct {
		OS, Architecture, Variant string
		DiffIDs                   []v1.Hash
		Config                    keyedFields
	}{s.config.OS, s.config.Architecture, s.config.Variant, s.config.RootFS.DiffIDs, keyedConfig(s.config.Config)}
	raw, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("builder: encoding a state identity: %v", err)) // plain data: cannot fail
	}
	return digestOf("kiln-state-v1", string(raw))
}

// keySalt folds the build settings that change every layer's bytes into every key.
// The compression is not one of them: layers are cached uncompressed and compressed
// by the outputs (output.Compressor), so one cached step serves a gzip push and a
// zstd tarball alike. The isolation and the ignored paths are left out on purpose:
// they differ between machines sharing a cache and do not change what a step puts in
// the image. The version changes when kiln changes what a step produces (v2: --chown=NAME
// takes the group NAME, and RUN gets dockerd's supplementary groups; v3: layers are
// stored uncompressed), so that no cache made by an older kiln answers for it.
func (b *build) keySalt() string {
	return digestOf("kiln-cache-salt-v3", strconv.FormatBool(b.req.Reproducible), b.req.SnapshotMode.String()).Hex
}

// stepKey computes the key of an expanded instruction about to run on the stage's
// current state. It fails for steps that cannot be cached.
func (s *stage) stepKey(ctx context.Context, cmd instructions.Command) (*stepKey, error) {
	raw, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encoding the instruction: %w", err)
	}
	inputs, err := s.stepInputs(ctx, cmd)
	if err != nil {
		return nil, err
	}
	start := s.state.identity().String()
	if linked(cmd) {
		start = linkedStart(s.state.config.Config.WorkingDir)
	}
	slot := digestOf("kiln-cache-slot-v1", s.b.cacheSalt, start, fmt.Sprintf("%T", cmd), string(raw))
	parts := []string{"kiln-cache-key-v1", slot.String()}
	for _, in := range inputs {
		parts = append(parts, in.Name, in.Digest)
	}
	return &stepKey{key: digestOf(parts...), slot: slot, inputs: inputs}, nil
}

// linked reports whether cmd is a COPY --link or ADD --link: a step whose layer is made
// on an empty filesystem (see copier.Request.Link), so it reads nothing of the state it
// starts from but the working directory a relative destination is resolved in. Its key
// leaves the rest of the state out, and its cached layer is laid on whatever state the
// step starts from: a changed base image or an earlier step that ran again does not run
// a --link step again, as in BuildKit, where such layers are rebased.
func linked(cmd instructions.Command) bool {
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		return c.Link
	case *instructions.AddCommand:
		return c.Link
	}
	return false
}

// linkedStart is what a --link step's key holds of its starting state.
func linkedStart(workDir string) string {
	return digestOf("kiln-linked-start-v1", workDir).String()
}

// stepInputs lists what a step reads besides its starting state and instruction.
func (s *stage) stepInputs(ctx context.Context, cmd instructions.Command) ([]CacheInput, error) {
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		var inputs []CacheInput
		for _, kv := range s.b.args.stageArgs(s.state.config.Config.Env, true) {
			k, v, _ := strings.Cut(kv, "=")
			inputs = append(inputs, CacheInput{Name: "arg:" + k, Digest: digestOf(v).String()})
		}
		// The mounts' specs (ids, targets, options), which the instruction's encoding
		// lacks; never a secret's value: a changed secret does not run the step again,
		// as in BuildKit.
		mounts, err := runMounts(c, s.state.config.Config.WorkingDir)
		if err != nil {
			return nil, err
		}
		for i, m := range mounts {
			name := "mount:" + strconv.Itoa(i)
			inputs = append(inputs, CacheInput{Name: name, Digest: digestOf(m.mountKey()).String()})
			if m.Type != instructions.MountTypeBind && (m.Type != instructions.MountTypeCache || m.From == "") {
				continue
			}
			// What a bind mount shows, or a cache starts with: the content of the
			// context's files, as for COPY, or the stage's or image's identity.
			source := m.Source
			if source == "" {
				source = "/"
			}
			bound, err := s.copyInputs(ctx, m.From, copier.Request{Sources: []string{source}})
			if err != nil {
				return nil, fmt.Errorf("bind mount of %s: %w", source, err)
			}
			for _, in := range bound {
				inputs = append(inputs, CacheInput{Name: name + ":" + in.Name, Digest: in.Digest})
			}
		}
		// --network=none and --security=insecure change what the RUN can do: their
		// steps are not those of a plain RUN (the defaults add nothing, so keys of
		// existing steps stay as they were).
		// The build's network mode counts as the RUN's own --network=none would.
		if s.noNetwork(c) {
			inputs = append(inputs, CacheInput{Name: "network", Digest: digestOf(instructions.NetworkNone).String()})
		}
		if sec := instructions.GetSecurity(c); sec == instructions.SecurityInsecure {
			inputs = append(inputs, CacheInput{Name: "security", Digest: digestOf(sec).String()})
		}
		return inputs, nil
	case *instructions.CopyCommand:
		return s.copyInputs(ctx, c.From, copier.Request{Sources: c.SourcePaths, Exclude: c.ExcludePatterns, Parents: c.Parents})
	case *instructions.AddCommand:
		return s.copyInputs(ctx, "", copier.Request{Sources: c.SourcePaths, Exclude: c.ExcludePatterns})
	}
	return nil, nil
}

// copyInputs describes the sources of a COPY or ADD, resolving --from as copySource does.
// The flags (--exclude, --chmod, ...) are in the instruction's encoding, part of the slot.
func (s *stage) copyInputs(ctx context.Context, from string, sel copier.Request) ([]CacheInput, error) {
	if len(sel.Sources) == 0 {
		return nil, nil // only here-documents, which are in the instruction
	}
	if from == "" {
		return sourceInputsKnown(ctx, s.b.hashes, s.contextSource(), sel, s.b.req.Context.Digests)
	}
	if j, ok := s.b.df.stageIndex(from, s.index); ok {
		res := s.b.results[j]
		if res == nil {
			return nil, fmt.Errorf("stage %s was not built", from)
		}
		return []CacheInput{{Name: "stage:" + from, Digest: res.state.identity().String()}}, nil
	}
	if _, err := strconv.Atoi(from); err == nil {
		return nil, fmt.Errorf("--from=%s names no earlier stage", from)
	}
	st, _, err := s.b.puller.pull(ctx, from, s.b.platform.forFiles())
	if err != nil {
		return nil, err
	}
	id := st.id()
	return []CacheInput{{Name: "image:" + from, Digest: id.String()}}, nil
}

// sourceInputs describes every path COPY would read from src for sources, in order:
// one input per path, named "file:<path>", whose digest covers the path's type, mode,
// link target or device number, the name a source gets in a destination directory,
// and a regular file's content. Files are hashed by a few workers in parallel.
func sourceInputs(ctx context.Context, memo *hashMemo, src copier.Source, req copier.Request) ([]CacheInput, error) {
	return sourceInputsKnown(ctx, memo, src, req, nil)
}

// sourceInputsKnown is sourceInputs taking the digests known of src's files from
// known, when it knows them, instead of reading the files. memo (nil: none) supplies
// and keeps the digests of unchanged files.
func sourceInputsKnown(ctx context.Context, memo *hashMemo, src copier.Source, req copier.Request, known contexts.FileDigests) ([]CacheInput, error) {
	var sel []copier.Selected
	err := copier.Select(ctx, src, req, func(e copier.Selected) error {
		sel = append(sel, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	contents, err := hashContents(ctx, memo, sel, knownDigests(src.Root, known))
	if err != nil {
		return nil, err
	}
	memo.save()
	inputs := make([]CacheInput, len(sel))
	for i, e := range sel {
		parts := []string{strconv.FormatUint(uint64(e.Info.Mode()), 8), e.Name, contents[i]}
		switch {
		case e.Info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(e.Host)
			if err != nil {
				return nil, fmt.Errorf("reading link %s: %w", e.Rel, err)
			}
			parts = append(parts, target)
		case e.Info.Mode()&fs.ModeDevice != 0:
			if st, ok := e.Info.Sys().(*syscall.Stat_t); ok {
				parts = append(parts, strconv.FormatUint(st.Rdev, 10))
			}
		}
		inputs[i] = CacheInput{Name: "file:" + e.Rel, Digest: digestOf(parts...).String()}
	}
	return inputs, nil
}

// knownDigests looks a selected file up in known, by its path below root.
func knownDigests(root string, known contexts.FileDigests) func(copier.Selected) (string, bool) {
	if known == nil || root == "" {
		return nil
	}
	return func(e copier.Selected) (string, bool) {
		rel, ok := strings.CutPrefix(e.Host, root+string(filepath.Separator))
		if !ok {
			return "", false
		}
		return known.FileDigest(filepath.ToSlash(rel), e.Info)
	}
}

// hashContents returns the sha256 of each regular file in sel ("" for other types),
// reading only those that known (when not nil) and memo do not know.
func hashContents(ctx context.Context, memo *hashMemo, sel []copier.Selected, known func(copier.Selected) (string, bool)) ([]string, error) {
	out := make([]string, len(sel))
	todo := make([]int, 0, len(sel))
	for i, e := range sel {
		if !e.Info.Mode().IsRegular() {
			continue
		}
		if known != nil {
			if d, ok := known(e); ok {
				out[i] = d
				continue
			}
		}
		if st, ok := e.Info.Sys().(*syscall.Stat_t); ok {
			if d, ok := memo.lookup(e.Host, st); ok {
				out[i] = d
				continue
			}
		}
		todo = append(todo, i)
	}
	work := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	workers := min(runtime.GOMAXPROCS(0), 8)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128<<10)
			for i := range work {
				d, err := memoDigest(memo, sel[i].Host, buf)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("hashing %s: %w", sel[i].Rel, err)
					}
					mu.Unlock()
					continue
				}
				out[i] = d
			}
		}()
	}
	for _, i := range todo {
		select {
		case work <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, firstErr
}

// fileDigest is the sha256 of a file's content, "sha256:<hex>".
func fileDigest(path string, buf []byte) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// digestOf hashes parts, each prefixed with its length so no two lists collide.
func digestOf(parts ...string) v1.Hash {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		io.WriteString(h, p)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// describeInputChanges names the inputs that differ between two lists ("" when none).
func describeInputChanges(prev, now []CacheInput) string {
	old := map[string]string{}
	for _, in := range prev {
		old[in.Name] = in.Digest
	}
	var changes []string
	seen := map[string]bool{}
	for _, in := range now {
		seen[in.Name] = true
		d, ok := old[in.Name]
		switch {
		case !ok:
			changes = append(changes, describeInput(in.Name)+" is new")
		case d != in.Digest:
			changes = append(changes, describeInput(in.Name)+" changed")
		}
	}
	for _, in := range prev {
		if !seen[in.Name] {
			changes = append(changes, describeInput(in.Name)+" is gone")
			seen[in.Name] = true
		}
	}
	if len(changes) > 3 {
		changes = append(changes[:3], fmt.Sprintf("%d more inputs changed", len(changes)-3))
	}
	return strings.Join(changes, ", ")
}

// describeInput turns an input's name into words: "file:a.txt" -> "file a.txt".
func describeInput(name string) string {
	kind, what, _ := strings.Cut(name, ":")
	switch kind {
	case "arg":
		return "build arg " + what
	case "stage":
		return "stage " + what
	}
	return kind + " " + what
}

// shortHash abbreviates "sha256:<hex>" to 12 hex digits, as Docker prints IDs.
func shortHash(s string) string {
	_, hexPart, ok := strings.Cut(s, ":")
	if !ok {
		hexPart = s
	}
	if len(hexPart) > 12 {
		return hexPart[:12]
	}
	return hexPart
}
