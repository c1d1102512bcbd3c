package output

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Spec says where one built image goes. Every front door fills one from its protocol
// (kiln build's flags, kiln serve's /build query and push-on-build) and hands it to
// Write, so the order of the writes and the options of the pushes are the same for
// all of them.
type Spec struct {
	// Names are the image's names: the repo tags of the tarball, the reference names
	// in the OCI layout, the names of the digest files.
	Names []name.Tag
	// Tarball and Layout are the paths of a docker-archive tarball (docker load) and
	// of an OCI image layout to write; empty means none.
	Tarball, Layout string
	// Push are the references pushed, one after the other, in order.
	Push []name.Reference
	// PushConfig is how they are pushed.
	PushConfig PushConfig
	// DigestFile, NameDigestFile and NameTagDigestFile are kaniko's digest files,
	// written last so they exist only when the pushes they describe succeeded.
	DigestFile, NameDigestFile, NameTagDigestFile string
	// Compressor brings the image's uncompressed layers to the compression the
	// outputs get (CompressImage) before anything is written; nil compresses with gzip
	// into a temporary memo removed when Write returns.
	Compressor *Compressor
}

// writes reports whether spec sends the image anywhere, and so needs its layers
// compressed.
func (spec Spec) writes() bool {
	return spec.Tarball != "" || spec.Layout != "" || len(spec.Push) > 0 ||
		spec.DigestFile != "" || spec.NameDigestFile != "" || spec.NameTagDigestFile != ""
}

// Compress returns img with its layers compressed as spec's Compressor says (see
// Spec.Compressor), and a func that releases what a temporary memo holds, to be
// called when the returned image has been written.
func (spec Spec) Compress(ctx context.Context, img v1.Image) (v1.Image, func(), error) {
	c := spec.Compressor
	done := func() {}
	if c == nil {
		dir, err := os.MkdirTemp("", "kiln-compress-")
		if err != nil {
			return nil, nil, fmt.Errorf("compressing layers: %w", err)
		}
		done = func() { os.RemoveAll(dir) }
		if c, err = NewCompressor(dir, Gzip, 0); err != nil {
			done()
			return nil, nil, err
		}
	}
	out, err := c.CompressImage(ctx, img)
	if err != nil {
		done()
		return nil, nil, err
	}
	return out, done, nil
}

// PushConfig is how a door pushes: the same for the image's pushes and for a
// permission check before the build (Options).
type PushConfig struct {
	// Keychain authenticates pushes; nil pushes anonymously.
	Keychain authn.Keychain
	// Transport returns the transport for one registry (its CA, its client
	// certificate); nil, or a nil answer, means go-containerregistry's default.
	Transport func(registry string) http.RoundTripper
	// PlainHTTP reports registries pushed to over plain HTTP.
	PlainHTTP func(registry string) bool
	// SkipTLSVerify reports registries whose certificate is not verified.
	SkipTLSVerify func(registry string) bool
	// Retries retries a failed push of one reference (kaniko's --push-retry).
	Retries int
	// UserAgent is sent to registries; empty keeps go-containerregistry's.
	UserAgent string
	// IgnoreImmutableTags lets a push refused because the tag is immutable pass,
	// with a PushSkipped event (--push-ignore-immutable-tag-errors).
	IgnoreImmutableTags bool
	// Pushed, when set, is told the bytes of each successful push (a server's
	// metrics).
	Pushed func(n int64)
	// Progress, when set, receives each push's progress (WithProgress).
	Progress func(ref name.Reference, update v1.Update)
}

// Options are the push options for registry; onIgnored receives a push that
// IgnoreImmutableTags let pass.
func (c PushConfig) Options(registry string, onIgnored func(ref name.Reference, err error)) []PushOption {
	opts := []PushOption{WithKeychain(c.Keychain), WithRetries(c.Retries)}
	if c.Transport != nil {
		if rt := c.Transport(registry); rt != nil {
			opts = append(opts, WithTransport(rt))
		}
	}
	if c.SkipTLSVerify != nil {
		opts = append(opts, WithSkipTLSVerify(c.SkipTLSVerify))
	}
	if c.UserAgent != "" {
		opts = append(opts, WithUserAgent(c.UserAgent))
	}
	if c.IgnoreImmutableTags {
		opts = append(opts, WithIgnoreImmutableTagErrors(onIgnored))
	}
	if c.Pushed != nil {
		opts = append(opts, WithPushedBytes(c.Pushed))
	}
	if c.Progress != nil {
		opts = append(opts, WithProgress(c.Progress))
	}
	return opts
}

// An Event reports what Write did; doors render it (log lines, Docker push status).
type Event interface{ outputEvent() }

// Writing is sent before a file output is written: Kind is "tarball" or "layout".
type Writing struct{ Kind, Path string }

// Pushing is sent before an image is pushed to Ref.
type Pushing struct{ Ref name.Reference }

// Pushed is sent when the push to Ref is done (after a PushSkipped, the tag kept
// its image): the image's manifest digest and size.
type Pushed struct {
	Ref    name.Reference
	Digest v1.Hash
	Size   int
}

// PushSkipped is sent when a push was refused because Ref's tag is immutable and
// PushConfig.IgnoreImmutableTags let it pass: the tag keeps the image it has.
type PushSkipped struct {
	Ref name.Reference
	Err error
}

func (Writing) outputEvent()     {}
func (Pushing) outputEvent()     {}
func (Pushed) outputEvent()      {}
func (PushSkipped) outputEvent() {}

// Write sends img everywhere spec says: the local files first, then the registries,
// and the digest files last. emit receives progress, in order; nil drops it.
func Write(ctx context.Context, img v1.Image, spec Spec, emit func(Event)) error {
	if emit == nil {
		emit = func(Event) {}
	}
	if spec.writes() {
		compressed, done, err := spec.Compress(ctx, img)
		if err != nil {
			return err
		}
		defer done()
		img = compressed
	}
	if spec.Tarball != "" {
		emit(Writing{Kind: "tarball", Path: spec.Tarball})
		if err := WriteTarball(spec.Tarball, img, spec.Names); err != nil {
			return err
		}
	}
	refs := make([]name.Reference, len(spec.Names))
	for i, t := range spec.Names {
		refs[i] = t
	}
	if spec.Layout != "" {
		emit(Writing{Kind: "layout", Path: spec.Layout})
		if err := WriteLayout(spec.Layout, img, refs...); err != nil {
			return err
		}
	}
	if len(spec.Push) > 0 {
		raw, err := img.RawManifest()
		if err != nil {
			return err
		}
		for _, ref := range spec.Push {
			registry := ref.Context().RegistryStr()
			if spec.PushConfig.PlainHTTP != nil && spec.PushConfig.PlainHTTP(registry) {
				if ref, err = name.ParseReference(ref.String(), name.Insecure); err != nil {
					return err
				}
			}
			emit(Pushing{Ref: ref})
			digest, err := Push(ctx, img, []name.Reference{ref}, spec.PushConfig.Options(registry, func(r name.Reference, err error) {
				emit(PushSkipped{Ref: r, Err: err})
			})...)
			if err != nil {
				return err
			}
			emit(Pushed{Ref: ref, Digest: digest, Size: len(raw)})
		}
	}
	if err := WriteDigestFiles(img, refs, spec.DigestFile, spec.NameDigestFile, spec.NameTagDigestFile); err != nil {
		return fmt.Errorf("writing digest files: %w", err)
	}
	return nil
}
