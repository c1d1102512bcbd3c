package builder

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
)

// The memo file's format: a magic line, the entry count, then per entry the path
// (length-prefixed), the stat key as varints and the sha256 digest as 32 raw bytes.
// Read whole on every build that hashes context files, so it is kept compact and
// quick to decode (gob took several times as long).
const memoMagic = "kiln context hashes v1\n"

var errMemoFormat = errors.New("malformed context-hash memo")

// encodeMemo writes entries in the memo format.
func encodeMemo(w io.Writer, entries map[string]memoEntry) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(memoMagic)
	var tmp [binary.MaxVarintLen64]byte
	uv := func(v uint64) { bw.Write(tmp[:binary.PutUvarint(tmp[:], v)]) }
	sv := func(v int64) { bw.Write(tmp[:binary.PutVarint(tmp[:], v)]) }
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Digest, "sha256:") && len(e.Digest) == len("sha256:")+64 {
			n++
		}
	}
	uv(uint64(n))
	for p, e := range entries {
		raw, err := hex.DecodeString(strings.TrimPrefix(e.Digest, "sha256:"))
		if err != nil || len(raw) != 32 || !strings.HasPrefix(e.Digest, "sha256:") {
			continue
		}
		uv(uint64(len(p)))
		bw.WriteString(p)
		uv(e.Dev)
		uv(e.Ino)
		sv(e.Size)
		uv(uint64(e.Mode))
		sv(e.MtimeNs)
		sv(e.CtimeNs)
		bw.Write(raw)
	}
	return bw.Flush()
}

// decodeMemo reads the memo format.
func decodeMemo(data []byte) (map[string]memoEntry, error) {
	if !bytes.HasPrefix(data, []byte(memoMagic)) {
		return nil, errMemoFormat
	}
	d := memoDecoder{buf: data[len(memoMagic):]}
	n := d.uvarint()
	if d.bad || n > uint64(len(data)) {
		return nil, errMemoFormat
	}
	out := make(map[string]memoEntry, n)
	for range n {
		p := d.bytes(int(min(d.uvarint(), uint64(len(data)))))
		e := memoEntry{Dev: d.uvarint(), Ino: d.uvarint(), Size: d.varint(), Mode: uint32(d.uvarint()),
			MtimeNs: d.varint(), CtimeNs: d.varint()}
		raw := d.bytes(32)
		if d.bad {
			return nil, errMemoFormat
		}
		e.Digest = "sha256:" + hex.EncodeToString(raw)
		out[string(p)] = e
	}
	return out, nil
}

// memoDecoder reads varints and byte strings from buf; bad is set at the first
// read past its end or malformed varint, after which every read returns zero.
type memoDecoder struct {
	buf []byte
	bad bool
}

func (d *memoDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.bad, d.buf = true, nil
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// varint is a signed varint (zig-zag over uvarint, as binary.PutVarint writes it).
func (d *memoDecoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *memoDecoder) bytes(n int) []byte {
	if n > len(d.buf) {
		d.bad, d.buf = true, nil
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}
