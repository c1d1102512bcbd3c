package copier

import (
	"context"
	"fmt"
	"os"
)

// copyLinked performs a COPY --link or ADD --link: as in BuildKit, the copy is made
// onto an empty filesystem, independent of the build root's content, and the result is
// then laid over the build root the way a layer is: directories merge but take the
// copy's metadata, and anything else in the way (a file, a symlink) is replaced. So a
// symlink in the destination path is not followed, and a destination without a
// trailing slash is a new path even where the build root has a directory.
func copyLinked(ctx context.Context, src Source, dstRoot string, req Request) ([]string, error) {
	req.Link = false
	req.Plan = nil // the scratch copy is read back below: it must hold the files
	scratch, err := os.MkdirTemp(req.TempDir, "kiln-link-")
	if err != nil {
		return nil, fmt.Errorf("COPY --link: %w", err)
	}
	defer os.RemoveAll(scratch)
	if _, err := Copy(ctx, src, scratch, req); err != nil {
		return nil, err
	}
	m := &copier{
		src:     Source{Root: scratch},
		dstRoot: dstRoot,
		touched: map[string]struct{}{},
		buf:     make([]byte, 256<<10),
	}
	t := &tree{c: m, links: map[fileID]string{}, base: "."}
	if err := t.copyChildren(ctx, scratch, ".", dstRoot, nil, false); err != nil {
		return nil, fmt.Errorf("failed to copy files: %w", err)
	}
	if err := t.finish(); err != nil {
		return nil, fmt.Errorf("failed to copy files: %w", err)
	}
	return m.touchedPaths(), nil
}
