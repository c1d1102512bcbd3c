package buildkitapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/tonistiigi/fsutil"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
)

// keyImageDescriptor is the oci and docker exporters' base64 JSON descriptor of the
// image manifest, as BuildKit reports it.
const keyImageDescriptor = "containerimage.descriptor"

// progressEvery throttles transfer updates, as BuildKit's exporters do.
const progressEvery = 100 * time.Millisecond

// exportToClient writes the result to the client through its session: type=local and
// tar (the final filesystem), docker and oci (an image archive). index is the
// exporter's position in the solve, which is how the client's FileSend service
// tells its targets apart (BuildKit's client numbers them so), so that several
// exporters of one solve each reach their own destination.
func (s *Server) exportToClient(ctx context.Context, p *progress, b *built, index int, e *controlapi.Exporter, resp map[string]string) error {
	switch e.Type {
	case "local", "tar", "docker", "oci":
	default:
		return codeError(codes.InvalidArgument, "exporter %q is not supported by kiln (it has moby, image, local, tar, docker and oci)", e.Type)
	}
	ignored, err := checkExporterAttrs(e)
	if err != nil {
		return err
	}
	if len(ignored) > 0 {
		p.warn(fmt.Sprintf("exporter %s: kiln ignores %s", e.Type, strings.Join(ignored, ", ")))
	}
	if b.session == nil {
		return codeError(codes.FailedPrecondition, "exporter %s writes to the client's session, and this solve has none", e.Type)
	}
	switch e.Type {
	case "local":
		return s.exportFilesystem(ctx, p, b, index, false)
	case "tar":
		return s.exportFilesystem(ctx, p, b, index, true)
	}
	return exportArchive(ctx, p, b, index, e, resp)
}

// quietAttr reports the exporter attributes kiln reads elsewhere (name; mode, which
// the client applies) or that change nothing in what it writes: dest is the
// client's own; context, prefer-image-digest, buildinfo-attrs, oci-artifact, store and
// unpack are added by buildx for image-store features kiln's archives do not have.
func quietAttr(k string) bool {
	switch k {
	case "dest", "name", "mode", "context", "prefer-image-digest", "buildinfo-attrs", "oci-artifact", "store", "unpack":
		return true
	}
	return false
}

// checkExporterAttrs refuses the attributes that ask for an output kiln cannot write
// and returns, sorted, the others it does not use, for a warning.
func checkExporterAttrs(e *controlapi.Exporter) ([]string, error) {
	var ignored []string
	for k, v := range e.Attrs {
		switch {
		case k == "tar" && (e.Type == "docker" || e.Type == "oci"):
			if !truthy(v) {
				return nil, codeError(codes.InvalidArgument, "exporter %s: tar=%s (an OCI layout directory through the session's content store) is not supported by kiln; use the default tar=true", e.Type, v)
			}
		case k == "platform-split":
			if truthy(v) {
				return nil, codeError(codes.InvalidArgument, "exporter %s: platform-split=true is not supported by kiln, which builds one platform", e.Type)
			}
		case k == "oci-mediatypes" && (e.Type == "docker" || e.Type == "oci"):
		case k == "src" && (e.Type == "local" || e.Type == "tar"):
			return nil, codeError(codes.InvalidArgument, "exporter %s: src=%s is not supported by kiln; it exports the whole filesystem", e.Type, v)
		case quietAttr(k):
		default:
			ignored = append(ignored, k+"="+v)
		}
	}
	sort.Strings(ignored)
	return ignored, nil
}

// exportFilesystem sends the image's final filesystem to the client: as a directory
// (type=local, the client writes it under dest) or as one tar stream (type=tar).
// The layers are applied into a scratch directory under the build's, which is then
// sent with BuildKit's own file sync, so the client receives what BuildKit's local
// and tar exporters send: each file's mode, mtime and (in the tar) uid/gid, the
// directory created by the client owned by its own user.
func (s *Server) exportFilesystem(ctx context.Context, p *progress, b *built, index int, asTar bool) (err error) {
	name, step := "exporting to client directory", "copying files"
	if asTar {
		name, step = "exporting to client tarball", "sending tarball"
	}
	done := p.vertex(name)
	defer func() { done(err) }()
	dir, err := os.MkdirTemp(b.dir, "export-fs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The root of the export is the image's "/", which no layer describes.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := builder.ExtractFilesystem(ctx, b.res.Image, dir); err != nil {
		return fmt.Errorf("exporting the image's filesystem: %w", err)
	}
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		return err
	}
	report := throttled(p, step)
	if !asTar {
		err := filesync.CopyToCaller(ctx, fs, index, b.session, func(n int, last bool) { report(int64(n), last) },
			filesync.WithExporterMultiPlatformTransfer())
		if err != nil {
			return fmt.Errorf("sending the filesystem to the client: %w", err)
		}
		return nil
	}
	w, err := filesync.CopyFileWriter(ctx, nil, index, b.session)
	if err != nil {
		return fmt.Errorf("sending the tarball to the client: %w", err)
	}
	return finishStream(w, fsutil.WriteTar(ctx, fs, &countingWriter{w: w, report: report}), report)
}

// exportArchive streams the image to the client as a docker-archive (type=docker,
// what docker load reads) or an OCI layout tar (type=oci), named by the exporter's
// name attribute, in BuildKit's archive layout.
func exportArchive(ctx context.Context, p *progress, b *built, index int, e *controlapi.Exporter, resp map[string]string) (err error) {
	done := p.vertex(fmt.Sprintf("exporting to %s image format", e.Type))
	defer func() { done(err) }()
	var names []string
	for _, n := range strings.Split(e.Attrs["name"], ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	full, err := normalizedNames(names)
	if err != nil {
		return codeError(codes.InvalidArgument, "exporter %s: %v", e.Type, err)
	}
	// BuildKit's oci exporter names the blobs by OCI media types, its docker exporter
	// keeps the image's own, unless oci-mediatypes says otherwise.
	// The build's layers are plain tars: the archive gets them gzipped, as BuildKit's.
	img, release, err := output.Spec{}.Compress(ctx, b.res.Image)
	if err != nil {
		return fmt.Errorf("exporter %s: %w", e.Type, err)
	}
	defer release()
	ociTypes := e.Type == "oci"
	if v, ok := e.Attrs["oci-mediatypes"]; ok {
		ociTypes = truthy(v)
	}
	if ociTypes {
		if img, err = output.OCIMediaTypes(img); err != nil {
			return fmt.Errorf("exporter %s: %w", e.Type, err)
		}
	}
	created := time.Now()
	md, err := archiveResponse(img, created, full)
	if err != nil {
		return err
	}
	for k, v := range md {
		resp[k] = v
	}
	format := output.ArchiveOCI
	if e.Type == "docker" {
		format = output.ArchiveDocker
	}
	w, err := filesync.CopyFileWriter(ctx, md, index, b.session)
	if err != nil {
		return fmt.Errorf("sending the image to the client: %w", err)
	}
	report := throttled(p, "sending tarball")
	return finishStream(w, output.WriteArchive(&countingWriter{w: w, report: report}, img, format, full, created), report)
}

// archiveResponse is what the oci and docker exporters report, and send to the client
// with the archive: the digests, the manifest's descriptor and the normalized names.
func archiveResponse(img v1.Image, created time.Time, names []string) (map[string]string, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	config, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	size, err := img.Size()
	if err != nil {
		return nil, err
	}
	desc, err := json.Marshal(v1.Descriptor{
		MediaType: mt, Digest: digest, Size: size,
		Annotations: map[string]string{"org.opencontainers.image.created": created.UTC().Format(time.RFC3339)},
	})
	if err != nil {
		return nil, err
	}
	md := map[string]string{
		keyImageDigest:     digest.String(),
		keyConfigDigest:    config.String(),
		keyImageDescriptor: base64.StdEncoding.EncodeToString(desc),
	}
	if len(names) > 0 {
		md[keyImageName] = strings.Join(names, ",")
	}
	return md, nil
}

// normalizedNames spells names as BuildKit reports them: foo becomes
// docker.io/library/foo:latest.
func normalizedNames(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		r, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			return nil, fmt.Errorf("name %q: %w", n, err)
		}
		out = append(out, reference.TagNameOnly(r).String())
	}
	return out, nil
}

// finishStream closes a stream to the client after writing it ended with werr. A
// client that already has the target answers AlreadyExists, which BuildKit's
// exporters take as done.
func finishStream(w io.WriteCloser, werr error, report func(int64, bool)) error {
	cerr := w.Close()
	if grpcerrors.Code(cerr) == codes.AlreadyExists || grpcerrors.Code(werr) == codes.AlreadyExists {
		return nil
	}
	if werr != nil {
		if cerr != nil && errors.Is(werr, io.EOF) {
			werr = cerr // the client ended the stream: its reason is in the close
		}
		return fmt.Errorf("sending the tarball to the client: %w", werr)
	}
	if cerr != nil {
		return fmt.Errorf("sending the tarball to the client: %w", cerr)
	}
	report(-1, true)
	return nil
}

// throttled reports a transfer's progress at most every progressEvery, and always
// its last update. n < 0 means the last count reported.
func throttled(p *progress, what string) func(n int64, last bool) {
	var mu sync.Mutex
	var at time.Time
	var count int64
	return func(n int64, last bool) {
		mu.Lock()
		defer mu.Unlock()
		if n >= 0 {
			count = n
		}
		if last || time.Since(at) >= progressEvery {
			at = time.Now()
			p.transfer(what, count, last)
		}
	}
}

// countingWriter reports the bytes written through it.
type countingWriter struct {
	w      io.Writer
	n      int64
	report func(int64, bool)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.report(c.n, false)
	return n, err
}
