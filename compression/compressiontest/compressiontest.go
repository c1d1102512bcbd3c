// Package compressiontest builds compressed streams that test the compression package's
// bounds at every reader that uses it.
package compressiontest

// HugeWindowZstd wraps payload (under 128 KiB) in one zstd frame whose header asks for a
// 1 GiB window (window descriptor 0xa0: windowLog 30), more than
// compression.MaxZstdWindow allows; an unbounded decoder would return payload.
func HugeWindowZstd(payload []byte) []byte {
	n := len(payload)<<3 | 1 // one last raw block
	return append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, byte(n), byte(n >> 8), byte(n >> 16)}, payload...)
}
