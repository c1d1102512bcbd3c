package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/builder/copier"
	"github.com/kiln-build/kiln/isolation"
)

// Directory mounts (RUN --mount=type=cache, bind, tmpfs) need chroot isolation: the
// runner bind-mounts them in the RUN's private mount namespace, so what is under the
// target never reaches the root and so never a layer. In place there is no such
// namespace, and covering an image directory for one RUN cannot be undone safely if
// kiln dies midway: those mounts are refused there.

// prepareDirMount prepares a cache, bind or tmpfs mount; scratch is a fresh path
// under the RUN's private directory (outside the root) it may use.
func (s *stage) prepareDirMount(ctx context.Context, p *preparedMounts, m runMount, scratch string) error {
	if s.b.ws.Isolation != isolation.Chroot {
		return fmt.Errorf("RUN --mount=type=%s: %w", m.Type, isolation.ErrMountNeedsChroot)
	}
	switch m.Type {
	case instructions.MountTypeTmpfs:
		p.mounts = append(p.mounts, isolation.Mount{Target: m.target, Tmpfs: true, TmpfsSize: m.SizeLimit})
		return nil
	case instructions.MountTypeBind:
		return s.prepareBind(ctx, p, m, scratch)
	case instructions.MountTypeCache:
		return s.prepareCache(ctx, p, m, scratch)
	}
	return fmt.Errorf("RUN --mount=type=%s: %w", m.Type, ErrUnsupported)
}

// prepareBind copies the mount's source (from the context, a stage or an image, as
// COPY --from finds them) to scratch and mounts the copy: read-only by default, and
// with rw the RUN's writes land in the copy, which is discarded after the RUN, as in
// BuildKit. The copy also keeps .dockerignore'd context files out of sight.
func (s *stage) prepareBind(ctx context.Context, p *preparedMounts, m runMount, scratch string) error {
	src, err := s.copySource(ctx, m.From)
	if err != nil {
		return fmt.Errorf("bind mount on %s: %w", m.target, err)
	}
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return err
	}
	source := m.Source
	if source == "" {
		source = "/"
	}
	// COPY semantics: a directory's content goes into /m, a file becomes /m.
	_, err = copier.Copy(ctx, src, scratch, copier.Request{
		Sources: []string{source}, Dest: "/m", WorkDir: "/", TempDir: s.b.tmpDir,
		Chown: keepOwner(src),
	})
	if err != nil {
		return fmt.Errorf("bind mount of %s on %s: %w", source, m.target, err)
	}
	host := filepath.Join(scratch, "m")
	if _, err := os.Lstat(host); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(host, 0o755); err != nil { // an empty directory source
			return err
		}
	}
	p.mounts = append(p.mounts, isolation.Mount{Source: host, Target: m.target, ReadOnly: m.ReadOnly})
	return nil
}

// keepOwner is the owner a bind mount's copy gets: nil (the source's own) except for
// the context, whose files COPY would give to root: BuildKit shows them as root's too.
func keepOwner(src copier.Source) *copier.Owner {
	if src.Context {
		return &copier.Owner{}
	}
	return nil
}

// prepareCache mounts the persistent directory of the mount's cache id (see
// mountCache), locked as its sharing says for the length of the RUN.
func (s *stage) prepareCache(ctx context.Context, p *preparedMounts, m runMount, scratch string) error {
	var seed *cacheSeed
	if m.From != "" {
		var err error
		if seed, err = s.cacheSeed(ctx, m); err != nil {
			return fmt.Errorf("cache mount %s: %w", m.id, err)
		}
	}
	mc := s.b.mountCache()
	dir, unlock, err := mc.acquire(ctx, m, seed, scratch)
	if err != nil {
		return fmt.Errorf("cache mount %s: %w", m.id, err)
	}
	p.closers = append(p.closers, unlock)
	p.mounts = append(p.mounts, isolation.Mount{Source: dir, Target: m.target, ReadOnly: m.ReadOnly})
	return nil
}

// cacheSeed describes the files a cache mount with from= starts with: source (default
// "/") in the stage or image. BuildKit keys such a cache on its base; kiln keys it on
// the base's files (names, modes, contents, as for COPY), so that a stage rebuilt to
// the same files keeps its cache.
func (s *stage) cacheSeed(ctx context.Context, m runMount) (*cacheSeed, error) {
	source := m.Source
	if source == "" {
		source = "/"
	}
	src, err := s.copySource(ctx, m.From)
	if err != nil {
		return nil, err
	}
	inputs, err := sourceInputs(ctx, s.b.hashes, src, copier.Request{Sources: []string{source}})
	if err != nil {
		return nil, err
	}
	parts := []string{source}
	for _, in := range inputs {
		parts = append(parts, in.Name, in.Digest)
	}
	return &cacheSeed{key: digestOf(parts...).String(), fill: func(data string) error {
		// COPY semantics: a directory's content goes into data.
		_, err := copier.Copy(ctx, src, filepath.Dir(data), copier.Request{
			Sources: []string{source}, Dest: "/" + filepath.Base(data) + "/", WorkDir: "/", TempDir: s.b.tmpDir,
		})
		return err
	}}, nil
}

// flockCtx takes an flock(2) lock on the open file f, failing with unix.EWOULDBLOCK
// instead of waiting when nonBlock is set. It gives up when ctx ends.
func flockCtx(ctx context.Context, f *os.File, how int, nonBlock bool) error {
	if nonBlock {
		return unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		if err := sleepCtx(ctx); err != nil {
			return err
		}
	}
}
