package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/builder/copier"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// copy executes COPY.
func (s *stage) copy(ctx context.Context, c *instructions.CopyCommand) error {
	src, err := s.copySource(ctx, c.From)
	if err != nil {
		return err
	}
	history := fmt.Sprintf("/bin/sh -c #(nop) COPY %s in %s ", strings.Join(c.SourcePaths, " "), c.DestPath)
	if len(c.SourceContents) > 0 {
		history = heredocCopyHistory("COPY", c.Chown, c.Chmod, c.SourcePaths, c.SourceContents, c.DestPath)
	}
	return s.copyFiles(ctx, src, copyOpts{sources: c.SourcePaths, heredocs: c.SourceContents, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod,
		exclude: c.ExcludePatterns, link: c.Link, parents: c.Parents, cmd: "COPY"}, history)
}

// add executes ADD.
func (s *stage) add(ctx context.Context, c *instructions.AddCommand) error {
	for _, p := range c.SourcePaths {
		if !isGitURL(p) {
			continue
		}
		switch {
		case len(c.SourcePaths) > 1:
			return fmt.Errorf("ADD of a git repository (%s) with other sources: %w", p, ErrUnsupported)
		case c.Checksum != "":
			return fmt.Errorf("ADD --checksum of a git repository: %w", ErrUnsupported)
		case strings.Contains(strings.SplitN(p, "#", 2)[0], "?"):
			return fmt.Errorf("ADD of a git repository with query parameters (%s): %w", p, ErrUnsupported)
		}
		return s.addGit(ctx, c)
	}
	if err := checkChecksum(c); err != nil {
		return err
	}
	src := s.contextSource()
	history := fmt.Sprintf("/bin/sh -c #(nop) ADD %s in %s ", strings.Join(c.SourcePaths, " "), c.DestPath)
	if len(c.SourceContents) > 0 {
		history = heredocCopyHistory("ADD", c.Chown, c.Chmod, c.SourcePaths, c.SourceContents, c.DestPath)
	}
	return s.copyFiles(ctx, src, copyOpts{sources: c.SourcePaths, heredocs: c.SourceContents, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod,
		exclude: c.ExcludePatterns, link: c.Link, add: true, checksum: c.Checksum, unpack: c.Unpack, cmd: "ADD"}, history)
}

// copyJob is one source tree of a COPY or ADD and what it takes from it.
type copyJob struct {
	src     copier.Source
	sources []string
	noAdd   bool // copied as by COPY even in an ADD (here-documents are never unpacked)
}

// withHeredocJobs writes a COPY/ADD's here-documents as files and adds them to jobs,
// after the paths, as BuildKit orders them.
func (s *stage) withHeredocJobs(jobs []copyJob, contents []instructions.SourceContent, dest, cmd string) ([]copyJob, error) {
	if len(jobs[0].sources) == 0 {
		jobs = nil
	}
	n := len(contents)
	for _, j := range jobs {
		n += len(j.sources)
	}
	if n > 1 && !strings.HasSuffix(dest, "/") {
		//lint:ignore ST1005 this is Docker's message, word for word
		return nil, fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /", cmd)
	}
	dir, names, err := writeHeredocFiles(s.b.tmpDir, contents)
	if err != nil {
		return nil, fmt.Errorf("writing the here-documents: %w", err)
	}
	return append(jobs, copyJob{src: copier.Source{Root: dir}, sources: names, noAdd: true}), nil
}

// copyOpts are the parts of a COPY or ADD instruction copyFiles carries out.
type copyOpts struct {
	sources      []string
	heredocs     []instructions.SourceContent // here-documents, copied after the sources
	cmd          string                       // COPY or ADD, for messages
	dest         string
	chown, chmod string
	exclude      []string
	link         bool
	parents      bool
	add          bool
	checksum     string
	unpack       *bool
}

func (s *stage) copyFiles(ctx context.Context, src copier.Source, o copyOpts, history string) error {
	if err := s.materialise(ctx); err != nil {
		return err
	}
	chown, chmod := o.chown, o.chmod
	req := copier.Request{
		Sources:  o.sources,
		Dest:     o.dest,
		Exclude:  o.exclude,
		Link:     o.link,
		Parents:  o.parents,
		Checksum: o.checksum,
		Unpack:   o.unpack,
		WorkDir:  s.state.config.Config.WorkingDir,
		Add:      o.add,
		TempDir:  s.b.tmpDir,
		Net:      s.b.fetchNet(),
	}
	if req.WorkDir == "" {
		req.WorkDir = "/"
	}
	if chown != "" {
		if o.link && chownByName(chown) {
			return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", chown)
		}
		id, err := resolveChown(s.root, chown)
		if err != nil {
			return err
		}
		if err := isolation.CheckOwner(id.UID, id.GID); err != nil {
			return fmt.Errorf("--chown=%s: %w", chown, err)
		}
		req.Chown = &copier.Owner{UID: id.UID, GID: id.GID}
	}
	if chmod != "" {
		mode, err := copier.ParseChmod(chmod)
		if err != nil {
			return err
		}
		req.Chmod = mode
	}
	jobs := []copyJob{{src: src, sources: o.sources}}
	if len(o.heredocs) > 0 {
		var err error
		if jobs, err = s.withHeredocJobs(jobs, o.heredocs, o.dest, o.cmd); err != nil {
			return err
		}
	}
	plan := s.copyPlan(o)
	var touched []string
	for _, j := range jobs {
		if j.noAdd {
			defer os.RemoveAll(j.src.Root) // the here-documents' files, written for this COPY
		}
		r := req
		r.Sources = j.sources
		r.Add = o.add && !j.noAdd
		r.Plan = plan
		if r.Add {
			lim := s.b.ws.InputLimits.effective()
			r.MaxArchiveBytes, r.MaxArchiveRatio = lim.MaxArchiveBytes, lim.MaxArchiveRatio
		}
		t, err := copier.Copy(ctx, j.src, s.root, r)
		if err != nil {
			return err
		}
		touched = append(touched, t...)
	}
	if len(jobs) > 1 {
		touched = slices.Compact(slices.Sorted(slices.Values(touched)))
	}
	if s.b.req.SingleSnapshot {
		return s.commitEmpty(history)
	}
	if plan.Len() > 0 {
		return s.writePlannedLayer(ctx, touched, plan, history)
	}
	if err := s.files.Update(s.root, touched); err != nil {
		return fmt.Errorf("recording copied files: %w", err)
	}
	return s.writeLayer(ctx, &snapshot.Changes{Changed: touched}, history)
}

// addGit executes ADD of a git repository: it is cloned as a git build context is
// (url#ref or url#ref:dir) and its checked-out files copied into the destination like a
// directory's contents, owned by 0:0 unless --chown, never extracted; the .git
// directory only with --keep-git-dir.
func (s *stage) addGit(ctx context.Context, c *instructions.AddCommand) error {
	dir, err := os.MkdirTemp(s.b.tmpDir, "add-git-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	keep := c.KeepGitDir != nil && *c.KeepGitDir
	opts := contexts.GitOptions{KeepGitDir: keep, SSHKnownHostsFile: s.b.ws.SSHKnownHostsFile}
	if contexts.IsSSHGitURL(c.SourcePaths[0]) {
		// As in BuildKit, an ssh remote authenticates with the build's "default"
		// agent (kiln build --ssh default, the session's sshforward).
		if err := s.gitSSHAgent(ctx, &opts); err != nil {
			return err
		}
	}
	gc, err := contexts.FromGit(ctx, c.SourcePaths[0], filepath.Join(dir, "repo"), opts, contexts.WithNetLimits(s.b.fetchNet()))
	if err != nil {
		return err
	}
	history := fmt.Sprintf("/bin/sh -c #(nop) ADD %s in %s ", c.SourcePaths[0], c.DestPath)
	src := copier.Source{Root: gc.Dir, Context: true}
	return s.copyFiles(ctx, src, copyOpts{sources: []string{"."}, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod,
		exclude: c.ExcludePatterns, link: c.Link}, history)
}

// gitSSHAgent sets opts to authenticate an ssh git remote with the build's default
// SSH agent, failing as BuildKit does when the client forwarded none.
func (s *stage) gitSSHAgent(ctx context.Context, opts *contexts.GitOptions) error {
	const id = "default"
	err := ErrSSHNotFound
	if s.b.req.SSH != nil {
		err = s.b.req.SSH.CheckSSH(ctx, id)
	}
	switch {
	case errors.Is(err, ErrSSHNotFound):
		return fmt.Errorf("no SSH key %q forwarded from the client for the ssh git remote (give --ssh default): %w", id, err)
	case err != nil:
		return fmt.Errorf("SSH agent %q: %w", id, err)
	}
	opts.SSHAgent = func(ctx context.Context) (net.Conn, error) { return s.b.req.SSH.DialSSH(ctx, id) }
	return nil
}

// checkChecksum refuses ADD --checksum where BuildKit does, with its messages: one
// source only, a URL, and a well-formed digest.
func checkChecksum(c *instructions.AddCommand) error {
	switch {
	case c.Checksum == "":
		return nil
	case len(c.SourcePaths) != 1:
		return errors.New("checksum can't be specified for multiple sources")
	case !strings.HasPrefix(c.SourcePaths[0], "http://") && !strings.HasPrefix(c.SourcePaths[0], "https://"):
		return errors.New("checksum requires HTTP(S) or Git sources")
	}
	if _, err := digest.Parse(c.Checksum); err != nil {
		return err
	}
	return nil
}

// chownByName reports whether a --chown value names its user or group rather than
// giving numbers: --link cannot resolve names, having no base filesystem to read.
func chownByName(chown string) bool {
	user, group, _ := strings.Cut(chown, ":")
	for _, part := range []string{user, group} {
		if part == "" {
			continue
		}
		if _, err := strconv.Atoi(part); err != nil {
			return true
		}
	}
	return false
}

// commitEmpty records an instruction whose files go into a later snapshot.
func (s *stage) commitEmpty(history string) error {
	s.state.addHistory(history, s.b.created)
	return nil
}

// copySource resolves COPY --from: the build context, an earlier stage, or an image.
func (s *stage) copySource(ctx context.Context, from string) (copier.Source, error) {
	if from == "" {
		return s.contextSource(), nil
	}
	if j, ok := s.b.df.stageIndex(from, s.index); ok {
		root, err := s.b.stageFS(ctx, j)
		if err != nil {
			return copier.Source{}, err
		}
		return copier.Source{Root: root}, nil
	}
	if _, err := strconv.Atoi(from); err == nil {
		return copier.Source{}, fmt.Errorf("invalid from flag value %s: refers to a stage that is not defined before this one", from)
	}
	root, err := s.b.imageFS(ctx, from)
	if err != nil {
		return copier.Source{}, err
	}
	return copier.Source{Root: root}, nil
}

// stageFS returns a directory holding the filesystem of finished stage j.
func (b *build) stageFS(ctx context.Context, j int) (string, error) {
	res := b.results[j]
	if res == nil {
		return "", fmt.Errorf("stage %d was not built", j)
	}
	if res.root != "" {
		// A stage's root may still owe the layers of its last steps, taken from the
		// cache; a stage taken wholly from the cache has an empty root until now.
		if _, err := res.stage.catchUp(ctx); err != nil {
			return "", err
		}
		return res.root, nil
	}
	key := "stage:" + strconv.Itoa(j)
	return b.extractFS(ctx, key, res.state)
}

// imageFS returns a directory holding the filesystem of an image (COPY --from=image).
func (b *build) imageFS(ctx context.Context, ref string) (string, error) {
	b.emit(Info{Message: fmt.Sprintf("Retrieving image %s", ref)})
	st, _, err := b.puller.pull(ctx, ref, b.platform.forFiles())
	if err != nil {
		return "", err
	}
	return b.extractFS(ctx, "image:"+ref, st)
}

// extractFS extracts a state's layers into a directory of the build's own, once.
func (b *build) extractFS(ctx context.Context, key string, st *imageState) (string, error) {
	b.fsMu.Lock()
	defer b.fsMu.Unlock()
	if dir, ok := b.fsCache[key]; ok {
		return dir, nil
	}
	dir := filepath.Join(b.tmpDir, "fs", strconv.Itoa(len(b.fsCache)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, l := range st.layers {
		if err := extractLayer(ctx, dir, l, nil, b.emit); err != nil {
			return "", err
		}
	}
	b.fsCache[key] = dir
	return dir, nil
}

// isGitURL reports whether an ADD source names a git repository, as BuildKit tells:
// git:// and ssh:// URLs, scp-style user@host:path addresses, and http(s) URLs
// whose path ends in .git.
func isGitURL(s string) bool {
	switch {
	case strings.HasPrefix(s, "git://"), strings.HasPrefix(s, "ssh://"), scpGitAddress.MatchString(s):
		return true
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		u := strings.SplitN(s, "#", 2)[0]
		u = strings.SplitN(u, "?", 2)[0] // BuildKit's repo.git?ref=... form
		return strings.HasSuffix(u, ".git")
	}
	return false
}

// scpGitAddress matches an scp-style ssh address, user@host:path, with BuildKit's
// character classes for the user and host.
var scpGitAddress = regexp.MustCompile(`^[a-zA-Z0-9_-]+@[a-zA-Z0-9.-]+:`)

// workdir executes WORKDIR: the directory is created (owned by root, as Docker does)
// and, when it did not exist, recorded in a layer.
func (s *stage) workdir(ctx context.Context, c *instructions.WorkdirCommand) error {
	if err := s.materialise(ctx); err != nil {
		return err
	}
	cfg := &s.state.config.Config
	cfg.WorkingDir = resolveWorkdir(cfg.WorkingDir, c.Path)
	history := "/bin/sh -c #(nop) WORKDIR " + cfg.WorkingDir
	created, err := s.mkdirAll(cfg.WorkingDir, nil)
	if err != nil {
		return err
	}
	if len(created) == 0 || s.b.req.SingleSnapshot {
		return s.commitEmpty(history)
	}
	if err := s.files.Update(s.root, created); err != nil {
		return err
	}
	return s.writeLayer(ctx, &snapshot.Changes{Changed: created}, history)
}

// contextSource is the build context as a COPY/ADD source.
func (s *stage) contextSource() copier.Source {
	c := s.b.req.Context
	src := copier.Source{Root: c.Dir, Excluded: c.Excluded, NoExceptions: !c.HasExceptions(), Context: true}
	if c.Listing != nil {
		src.List = c.Listing.List
	}
	return src
}
