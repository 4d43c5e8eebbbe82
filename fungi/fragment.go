package fungi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A fragment is one stored shard of one block (docs/fragment-format.md):
//
//	header (HeaderSize bytes) || shard (ShardSize bytes) || tag (TagSize bytes)
//
// The tag is a keyed BLAKE3 MAC over header||shard; its key is derived
// from the cluster secret and the block's CID, so a fragment verifies on
// its own, given the CID it is stored under.

const (
	// FragmentVersion is the format version this package writes and reads.
	FragmentVersion = 1
	// HeaderSize is the fixed size of a version-1 fragment header.
	HeaderSize = 36
	// TagSize is the size of a fragment's MAC.
	TagSize = 16
	// ShardAlign is the multiple every shard size is rounded up to.
	ShardAlign = 64
	// MaxBlockSize is the largest block the codec accepts (IPFS blocks are
	// at most 2 MiB in practice; our default chunks are 1 MiB).
	MaxBlockSize = 4 << 20

	fragmentMagic = "QSSF"
	gcmTagSize    = 16
	nonceSize     = 12
	// maxCiphertext bounds the ciphertext length field: compressed payloads
	// are kept only when smaller than the block.
	maxCiphertext = MaxBlockSize + gcmTagSize

	flagCompressed = 1 << 0
	knownFlags     = flagCompressed
)

// Header field offsets.
const (
	offMagic    = 0
	offVersion  = 4
	offMode     = 5
	offFlags    = 6
	offReserved = 7
	offK        = 8
	offN        = 10
	offIndex    = 12
	offReserve2 = 14
	offCipher   = 16
	offShard    = 20
	offNonce    = 24
)

// ErrFragmentHeader is wrapped by every error ParseFragmentHeader returns.
var ErrFragmentHeader = errors.New("bad fragment header")

// FragmentHeader is the decoded fixed header of a fragment.
type FragmentHeader struct {
	Version    uint8
	Coding     Coding
	Index      int  // 0 <= Index < Coding.N
	Compressed bool // the payload was s2-compressed before encryption
	CipherLen  int  // bytes of ciphertext (payload + 16-byte GCM tag) before padding
	ShardSize  int  // bytes of shard, a multiple of ShardAlign
	Nonce      [12]byte
}

// FragmentSize is the exact length of the fragment this header starts.
func (h FragmentHeader) FragmentSize() int { return HeaderSize + h.ShardSize + TagSize }

// shardSizeFor is the canonical shard size for a ciphertext of n bytes split
// over k shards: ceil(n/k) rounded up to ShardAlign.
func shardSizeFor(n, k int) int {
	s := (n + k - 1) / k
	return (s + ShardAlign - 1) / ShardAlign * ShardAlign
}

// putHeader writes h into b[:HeaderSize].
func putHeader(b []byte, h *FragmentHeader) {
	_ = b[HeaderSize-1]
	copy(b[offMagic:], fragmentMagic)
	b[offVersion] = FragmentVersion
	b[offMode] = byte(h.Coding.Mode)
	var flags byte
	if h.Compressed {
		flags |= flagCompressed
	}
	b[offFlags] = flags
	b[offReserved] = 0
	binary.BigEndian.PutUint16(b[offK:], uint16(h.Coding.K))
	binary.BigEndian.PutUint16(b[offN:], uint16(h.Coding.N))
	binary.BigEndian.PutUint16(b[offIndex:], uint16(h.Index))
	binary.BigEndian.PutUint16(b[offReserve2:], 0)
	binary.BigEndian.PutUint32(b[offCipher:], uint32(h.CipherLen))
	binary.BigEndian.PutUint32(b[offShard:], uint32(h.ShardSize))
	copy(b[offNonce:offNonce+nonceSize], h.Nonce[:])
}

// ParseFragmentHeader decodes and checks the header at the start of b (a
// fragment, or at least its first HeaderSize bytes). Every field is
// checked: magic, version, mode, flags, zero reserved bytes, a valid
// coding, index < N, a ciphertext length within MaxBlockSize and the
// canonical shard size for it. It does not check the MAC (that needs the
// cluster secret, see Codec.Verify) nor the fragment's length (compare
// len(frag) with FragmentSize). Errors wrap ErrFragmentHeader.
func ParseFragmentHeader(b []byte) (FragmentHeader, error) {
	var h FragmentHeader
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, need %d", ErrFragmentHeader, len(b), HeaderSize)
	}
	if string(b[offMagic:offMagic+4]) != fragmentMagic {
		return h, fmt.Errorf("%w: magic %q, want %q", ErrFragmentHeader, b[offMagic:offMagic+4], fragmentMagic)
	}
	if b[offVersion] != FragmentVersion {
		return h, fmt.Errorf("%w: version %d, this build reads %d", ErrFragmentHeader, b[offVersion], FragmentVersion)
	}
	flags := b[offFlags]
	if flags&^knownFlags != 0 {
		return h, fmt.Errorf("%w: unknown flags %#02x", ErrFragmentHeader, flags)
	}
	if b[offReserved] != 0 || binary.BigEndian.Uint16(b[offReserve2:]) != 0 {
		return h, fmt.Errorf("%w: reserved bytes not zero", ErrFragmentHeader)
	}
	h.Version = b[offVersion]
	h.Compressed = flags&flagCompressed != 0
	h.Coding = Coding{
		K:    int(binary.BigEndian.Uint16(b[offK:])),
		N:    int(binary.BigEndian.Uint16(b[offN:])),
		Mode: CodingMode(b[offMode]),
	}
	if err := h.Coding.Validate(); err != nil {
		return h, fmt.Errorf("%w: %w", ErrFragmentHeader, err)
	}
	h.Index = int(binary.BigEndian.Uint16(b[offIndex:]))
	if h.Index >= h.Coding.N {
		return h, fmt.Errorf("%w: index %d of %d fragments", ErrFragmentHeader, h.Index, h.Coding.N)
	}
	cl := binary.BigEndian.Uint32(b[offCipher:])
	if cl < gcmTagSize || cl > maxCiphertext {
		return h, fmt.Errorf("%w: ciphertext length %d out of range [%d, %d]", ErrFragmentHeader, cl, gcmTagSize, maxCiphertext)
	}
	h.CipherLen = int(cl)
	ss := binary.BigEndian.Uint32(b[offShard:])
	if want := shardSizeFor(h.CipherLen, h.Coding.K); ss != uint32(want) {
		return h, fmt.Errorf("%w: shard size %d, want %d for %d bytes over %d shards", ErrFragmentHeader, ss, want, h.CipherLen, h.Coding.K)
	}
	h.ShardSize = int(ss)
	copy(h.Nonce[:], b[offNonce:offNonce+nonceSize])
	return h, nil
}

// sameBlockEncoding reports whether two headers describe the same encoding
// of a block (all fields but the index), so their shards belong to one
// codeword.
func (h *FragmentHeader) sameBlockEncoding(o *FragmentHeader) bool {
	return h.Coding == o.Coding && h.Compressed == o.Compressed && h.CipherLen == o.CipherLen &&
		h.ShardSize == o.ShardSize && h.Nonce == o.Nonce
}
