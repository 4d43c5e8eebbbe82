package fungi

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/reedsolomon"
	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/blake3"
)

// The per-block pipeline ("QSS"): a block and its CID in, N self-verifying
// fragments out, and back. docs/fragment-format.md documents the bytes and
// the key derivations.
//
//	Encode: [s2 if it pays] -> AES-256-GCM -> Reed-Solomon -> header+shard+MAC
//	Decode: verify MACs (K good ones) -> Reed-Solomon -> GCM open -> [s2] -> CID check

// Sentinel errors of the codec; the errors of Encode, Decode and Verify wrap
// the one that applies (test with errors.Is). Other errors are programming
// errors of the caller (an undefined CID, a wrong number of slots).
var (
	// ErrNotEnoughFragments: fewer than K fragments passed verification.
	// The message says how many were good, missing and rejected.
	ErrNotEnoughFragments = errors.New("not enough fragments")
	// ErrBlockMismatch: K authentic fragments decoded into bytes that do
	// not match the block's CID (or failed to decrypt or decompress).
	// Only a holder of the cluster secret can produce such fragments.
	ErrBlockMismatch = errors.New("decoded block does not match its CID")
	// ErrCorruptFragment: one fragment failed Verify (bad header, wrong
	// index, coding or length, or a MAC mismatch: corrupt, truncated,
	// forged, or belonging to another block).
	ErrCorruptFragment = errors.New("corrupt fragment")
	// ErrBlockTooLarge: Encode was given more than MaxBlockSize bytes.
	ErrBlockTooLarge = errors.New("block too large")
	// ErrSecretTooShort: NewCodec needs a cluster secret of at least
	// MinSecretSize bytes.
	ErrSecretTooShort = errors.New("cluster secret too short")
)

// MinSecretSize is the shortest cluster secret NewCodec accepts.
const MinSecretSize = 16

// Domain strings of the key derivations (docs/fragment-format.md). Changing
// any of them changes every fragment: they are part of format version 1.
const (
	hkdfSalt          = "fungistor/qss/v1"
	infoMACKey        = "fungistor/qss/v1 fragment-mac\x00"
	infoAEADKey       = "fungistor/qss/v1 aes-256-gcm\x00"
	aadPrefix         = "fungistor/qss/v1 aad\x00"
	domainFragmentKey = "fungistor/qss/v1 fragment-key\x00"
)

// FragmentKeySize is the length of a FragmentKey.
const FragmentKeySize = 20

// Compression tuning: a block is compressed only when a sample shrinks by
// at least 1/sampleGain and the whole block by at least 1/keepGain.
const (
	sampleWindow = 4 << 10 // two windows: the start and the middle
	sampleGain   = 10      // sample must save >= 10%
	keepGain     = 16      // block must save >= 1/16
)

// Codec encodes blocks into fragments and decodes them back. It is safe for
// concurrent use; keep one per Coding (it decodes only fragments of its own
// coding) and cluster secret.
type Codec struct {
	coding   Coding
	prk      []byte // HKDF-Extract(salt, cluster secret)
	rs       reedsolomon.Encoder
	rsData   int  // Reed-Solomon data shards (K)
	rsPar    int  // Reed-Solomon parity shards (N in equations mode, N-K otherwise)
	gor      int  // goroutines one call may use for fragment tags
	compress bool // try s2 where it pays
}

// CodecOption tunes a Codec.
type CodecOption func(*codecOptions)

type codecOptions struct {
	goroutines int
	noCompress bool
}

// WithGoroutines lets one Encode or Decode call use up to n goroutines (the
// erasure coding splits each shard, and Encode computes fragment tags in
// parallel). The default (0) is tuned for one core per block, the setting
// of the published figures: only the erasure coding may use a second
// goroutine, because klauspost/reedsolomon v1.14.2 runs its GFNI kernels
// for codes of more than 10 data or parity shards only on its
// multi-goroutine path (2.8x faster at 16/4 in equations mode); under
// GOMAXPROCS=1 this is still one core. n == 1 makes every call strictly
// serial.
func WithGoroutines(n int) CodecOption { return func(o *codecOptions) { o.goroutines = n } }

// WithCompression turns the s2 compression of compressible blocks on (the
// default) or off. Either way the codec decodes both kinds of fragments.
func WithCompression(enabled bool) CodecOption {
	return func(o *codecOptions) { o.noCompress = !enabled }
}

// NewCodec returns a codec for coding c keyed by the cluster secret (at
// least MinSecretSize bytes; every node of a cluster must use the same one).
func NewCodec(clusterSecret []byte, c Coding, opts ...CodecOption) (*Codec, error) {
	if len(clusterSecret) < MinSecretSize {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrSecretTooShort, len(clusterSecret), MinSecretSize)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var o codecOptions
	for _, f := range opts {
		f(&o)
	}
	rsGor := 2
	if o.goroutines == 1 || o.goroutines > 2 {
		rsGor = o.goroutines
	}
	d, p := c.rsShards()
	rs, err := reedsolomon.New(d, p, reedsolomon.WithMaxGoroutines(rsGor))
	if err != nil {
		return nil, fmt.Errorf("coding %s: %w", c, err)
	}
	prk, err := hkdf.Extract(sha256.New, clusterSecret, []byte(hkdfSalt))
	if err != nil {
		return nil, err
	}
	return &Codec{coding: c, prk: prk, rs: rs, rsData: d, rsPar: p, gor: max(o.goroutines, 1), compress: !o.noCompress}, nil
}

// Coding is the coding this codec writes and reads.
func (c *Codec) Coding() Coding { return c.coding }

// EncodedBlock is the output of Encode.
type EncodedBlock struct {
	// Fragments[i] is stored under FragmentKey(cid, coding, i). They share
	// one allocation (each has its own capacity, so appending to one never
	// touches another).
	Fragments [][]byte
	// StoredBytes is the sum of the fragments' lengths.
	StoredBytes int
	// Compressed says the block was s2-compressed before encryption.
	Compressed bool

	buf *pooledBuf // backs Fragments; see Release
	gen uint64     // buf's generation when handed out
}

// Release hands the fragments' memory back for reuse by later Encode
// calls, which saves allocating and zeroing N*fragment bytes per block
// (about 10% of Encode at 1 MiB). It is optional (without it the garbage
// collector frees them) and must be the last use of Fragments: call it once
// every fragment has been written and no store or goroutine still holds one
// (FragmentStore.PutFragment must not retain data after it returns).
// Releasing twice, or through a copy of the EncodedBlock, is harmless: only
// the first Release of a given Encode's output counts.
func (e *EncodedBlock) Release() {
	if e.buf != nil && e.buf.gen.CompareAndSwap(e.gen, e.gen+1) {
		putBuf(e.buf)
	}
	*e = EncodedBlock{}
}

// FragmentKey is where fragment index of a block is stored: 20 bytes of
// BLAKE3 over a domain string, the coding, the index and the CID. Readers
// compute it, so manifests carry no per-fragment list. It is not keyed by
// the cluster secret: anyone who knows a CID (they are public, announced in
// the DHT) can compute where its fragments are, but not read them.
func FragmentKey(blockCID cid.Cid, c Coding, index int) []byte {
	h := blake3.New()
	var p [7]byte
	p[0] = byte(c.Mode)
	binary.BigEndian.PutUint16(p[1:], uint16(c.K))
	binary.BigEndian.PutUint16(p[3:], uint16(c.N))
	binary.BigEndian.PutUint16(p[5:], uint16(index))
	h.WriteString(domainFragmentKey)
	h.Write(p[:])
	h.WriteString(blockCID.KeyString())
	var sum [32]byte
	h.Sum(sum[:0])
	return sum[:FragmentKeySize:FragmentKeySize]
}

// Encode turns a block into Coding().N fragments. Encode is deterministic:
// the same block, coding and secret always give the same fragments, so a
// cluster stores a block once and a repair rewrites identical fragments.
//
// data must be the block blockCID names. Encode does not re-hash it (the
// importer has just computed the CID; Decode checks it on every read), and
// the nonce of an uncompressed block whose CID is a strong hash is derived
// from the CID: encoding other bytes under the same CID would reuse that
// nonce. data is not modified nor retained. Safe for concurrent use.
func (c *Codec) Encode(blockCID cid.Cid, data []byte) (EncodedBlock, error) {
	if !blockCID.Defined() {
		return EncodedBlock{}, errors.New("encode: undefined CID")
	}
	if len(data) > MaxBlockSize {
		return EncodedBlock{}, fmt.Errorf("encode %s: %w: %d bytes, at most %d", blockCID, ErrBlockTooLarge, len(data), MaxBlockSize)
	}
	k, n := c.coding.K, c.coding.N
	id := blockCID.KeyString()

	// (a) Compression, only where it pays.
	payload := data
	compressed := false
	var cbuf *pooledBuf
	if c.compress && worthCompressing(data) {
		cbuf = getBuf(s2.MaxEncodedLen(len(data)))
		if z := s2.Encode(cbuf.b, data); len(z) <= len(data)-len(data)/keepGain && len(z) < len(data) {
			payload, compressed = z, true
		} else {
			putBuf(cbuf)
			cbuf = nil
		}
	}

	// (b) Encryption.
	keys := c.aeadKeys(id, compressed)
	aead, err := newGCM(keys.key[:])
	if err != nil {
		return EncodedBlock{}, err
	}
	nonce := keys.nonce
	if compressed || !cidFixesBlock(blockCID) {
		// A synthetic nonce, from the bytes encrypted: compressed bytes
		// depend on the compressor's version, and a weak or short hash
		// might let two blocks share a CID (docs/fragment-format.md).
		siv, _ := blake3.NewKeyed(keys.siv[:])
		siv.Write(payload)
		var sum [32]byte
		siv.Sum(sum[:0])
		copy(nonce[:], sum[:nonceSize])
	}
	ctLen := len(payload) + gcmTagSize
	ss := shardSizeFor(ctLen, k)
	dbuf := getBuf(k * ss)
	defer putBuf(dbuf)
	aad := c.aad(id, compressed)
	aead.Seal(dbuf.b[:0], nonce[:], payload, aad)
	clear(dbuf.b[ctLen:])
	if cbuf != nil {
		putBuf(cbuf)
	}

	// (c) Erasure coding, parity written straight into the fragments.
	fs := HeaderSize + ss + TagSize
	obuf := getBuf(n * fs)
	out := obuf.b
	frags := make([][]byte, n)
	for i := range frags {
		frags[i] = out[i*fs : (i+1)*fs : (i+1)*fs]
	}
	shards := make([][]byte, c.rsData+c.rsPar)
	for j := 0; j < k; j++ {
		shards[j] = dbuf.b[j*ss : (j+1)*ss]
	}
	first := 0 // first fragment holding a parity shard
	if c.coding.Mode == Systematic {
		for j := 0; j < k; j++ {
			copy(frags[j][HeaderSize:], shards[j])
		}
		first = k
	}
	for i := first; i < n; i++ {
		shards[c.rsData+i-first] = frags[i][HeaderSize : HeaderSize+ss]
	}
	if err := c.rs.Encode(shards); err != nil {
		putBuf(obuf)
		return EncodedBlock{}, fmt.Errorf("encode %s: %w", blockCID, err)
	}

	// (d) Headers and tags.
	h := FragmentHeader{Version: FragmentVersion, Coding: c.coding, Compressed: compressed, CipherLen: ctLen, ShardSize: ss, Nonce: nonce}
	putHeader(frags[0], &h)
	for i := 1; i < n; i++ {
		copy(frags[i][:HeaderSize], frags[0][:HeaderSize])
		binary.BigEndian.PutUint16(frags[i][offIndex:], uint16(i))
	}
	mac := c.macHasher(id)
	if c.gor > 1 && n > 1 {
		var wg sync.WaitGroup
		per := (n + c.gor - 1) / c.gor
		for lo := 0; lo < n; lo += per {
			hi := min(lo+per, n)
			m := mac.Clone()
			wg.Go(func() {
				for i := lo; i < hi; i++ {
					sealFragment(m, frags[i], ss)
				}
			})
		}
		wg.Wait()
	} else {
		for i := range frags {
			sealFragment(mac, frags[i], ss)
		}
	}
	return EncodedBlock{Fragments: frags, StoredBytes: len(out), Compressed: compressed, buf: obuf, gen: obuf.gen.Load()}, nil
}

// sealFragment writes the tag of a fragment whose header and shard are set.
func sealFragment(mac *blake3.Hasher, frag []byte, ss int) {
	mac.Reset()
	mac.Write(frag[:HeaderSize+ss])
	var sum [32]byte
	mac.Sum(sum[:0])
	copy(frag[HeaderSize+ss:], sum[:TagSize])
}

// Verify checks one fragment on its own: its header, that it is fragment
// index of a block of this codec's coding, its length, and its MAC under
// the key of blockCID. Fragments of another block, another index, forged
// without the cluster secret, truncated or with any bit flipped fail with
// an error wrapping ErrCorruptFragment. Safe for concurrent use.
func (c *Codec) Verify(blockCID cid.Cid, index int, frag []byte) error {
	_, err := c.verify(c.macHasher(blockCID.KeyString()), index, frag)
	return err
}

// checkSlot checks what Verify checks but the tag: the fragment's header
// parses and says it is fragment index of this codec's coding, of its
// length. The Reader's optimistic decode uses it (see Reader.fetch).
func (c *Codec) checkSlot(index int, frag []byte) error {
	h, err := ParseFragmentHeader(frag)
	switch {
	case err != nil:
		return fmt.Errorf("fragment %d: %w: %w", index, ErrCorruptFragment, err)
	case h.Index != index || h.Coding != c.coding || len(frag) != h.FragmentSize():
		return fmt.Errorf("fragment %d: %w: does not fit its slot", index, ErrCorruptFragment)
	}
	return nil
}

func (c *Codec) verify(mac *blake3.Hasher, index int, frag []byte) (FragmentHeader, error) {
	h, err := ParseFragmentHeader(frag)
	if err != nil {
		return h, fmt.Errorf("fragment %d: %w: %w", index, ErrCorruptFragment, err)
	}
	switch {
	case h.Index != index:
		return h, fmt.Errorf("fragment %d: %w: header says index %d", index, ErrCorruptFragment, h.Index)
	case h.Coding != c.coding:
		return h, fmt.Errorf("fragment %d: %w: coding %s, this codec reads %s", index, ErrCorruptFragment, h.Coding, c.coding)
	case len(frag) != h.FragmentSize():
		return h, fmt.Errorf("fragment %d: %w: %d bytes, header says %d", index, ErrCorruptFragment, len(frag), h.FragmentSize())
	}
	end := HeaderSize + h.ShardSize
	mac.Reset()
	mac.Write(frag[:end])
	var sum [32]byte
	mac.Sum(sum[:0])
	if subtle.ConstantTimeCompare(sum[:TagSize], frag[end:]) != 1 {
		return h, fmt.Errorf("fragment %d: %w: MAC mismatch (damaged, forged, or of another block)", index, ErrCorruptFragment)
	}
	return h, nil
}

// Decode rebuilds a block from its fragments: frags[i] is fragment i or nil
// when missing; len(frags) must be N. Fragments are verified one by one
// (bad ones are skipped, never decoded) until K good ones of one encoding
// are found; the rest are not even read. The result is returned only after
// it matched blockCID. Errors wrap ErrNotEnoughFragments (the message says
// "have X of K required fragments") or ErrBlockMismatch. frags are not
// modified; the returned slice is the caller's. Safe for concurrent use.
func (c *Codec) Decode(blockCID cid.Cid, frags [][]byte) ([]byte, error) {
	data, _, err := c.decode(blockCID, frags, false, false)
	return data, err
}

// decode is Decode. With verified, the fragments' tags are not hashed:
// they passed Verify already, or the caller decodes optimistically and
// verifies them only if the result fails (the result is checked against
// the CID either way, so unverified fragments can make decode fail, never
// return other bytes). With pooled, the result is in a pooled buffer,
// returned too: the caller gives it back with putBuf once done with it.
func (c *Codec) decode(blockCID cid.Cid, frags [][]byte, verified, pooled bool) ([]byte, *pooledBuf, error) {
	k, n := c.coding.K, c.coding.N
	if len(frags) != n {
		return nil, nil, fmt.Errorf("decode %s: got %d fragment slots, coding %s has %d", blockCID, len(frags), c.coding, n)
	}
	id := blockCID.KeyString()
	mac := c.macHasher(id)

	// Authentic fragments of one block normally agree on everything but the
	// index. Two encodings of one block can differ (another compressor
	// version); group by encoding and decode the first group to reach K.
	type group struct {
		h   FragmentHeader
		idx []int
	}
	var groups []group
	var use *group
	missing, rejected := 0, 0
	var firstErr error
	for i, f := range frags {
		if f == nil {
			missing++
			continue
		}
		var h FragmentHeader
		var err error
		if verified {
			h, err = ParseFragmentHeader(f)
			if err == nil && (h.Index != i || h.Coding != c.coding || len(f) != h.FragmentSize()) {
				err = fmt.Errorf("fragment %d: %w: does not fit its slot", i, ErrCorruptFragment)
			}
		} else {
			h, err = c.verify(mac, i, f)
		}
		if err != nil {
			rejected++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		g := -1
		for j := range groups {
			if groups[j].h.sameBlockEncoding(&h) {
				g = j
				break
			}
		}
		if g < 0 {
			groups = append(groups, group{h: h, idx: make([]int, 0, k)})
			g = len(groups) - 1
		}
		groups[g].idx = append(groups[g].idx, i)
		if len(groups[g].idx) == k {
			use = &groups[g]
			break
		}
	}
	if use == nil {
		best := 0
		for _, g := range groups {
			best = max(best, len(g.idx))
		}
		detail := ""
		if len(groups) > 1 {
			detail += fmt.Sprintf(", %d encodings", len(groups))
		}
		if firstErr != nil {
			detail += "; first rejected: " + firstErr.Error()
		}
		return nil, nil, fmt.Errorf("decode %s: %w: have %d of %d required fragments (%d missing, %d rejected%s)",
			blockCID, ErrNotEnoughFragments, best, k, missing, rejected, detail)
	}
	data, out, err := c.decodeGroup(id, &use.h, use.idx, frags, pooled)
	if err == nil {
		err = checkBlock(blockCID, data)
	}
	if err != nil {
		if out != nil {
			putBuf(out)
		}
		return nil, nil, fmt.Errorf("decode %s: %w", blockCID, err)
	}
	return data, out, nil
}

// decodeGroup rebuilds, decrypts and decompresses the block from K verified
// fragments (idx, ascending) that share header h. With pooled, the block
// is returned in a pooled buffer (for an uncompressed block, the scratch
// buffer it was decrypted in, in place: no second buffer, no copy).
func (c *Codec) decodeGroup(id string, h *FragmentHeader, idx []int, frags [][]byte, pooled bool) (_ []byte, _ *pooledBuf, err error) {
	k, ss := c.coding.K, h.ShardSize
	buf := getBuf(k * ss)
	keep := false
	defer func() {
		if !keep {
			putBuf(buf)
		}
	}()
	b := buf.b
	shards := make([][]byte, c.rsData+c.rsPar)
	for j := 0; j < k; j++ {
		shards[j] = b[j*ss : j*ss : (j+1)*ss] // empty: to be rebuilt into b
	}
	need := k
	for _, i := range idx {
		shard := frags[i][HeaderSize : HeaderSize+ss]
		switch {
		case c.coding.Mode == Equations:
			shards[k+i] = shard
		case i < k:
			copy(b[i*ss:], shard)
			shards[i] = b[i*ss : (i+1)*ss]
			need--
		default:
			shards[i] = shard
		}
	}
	if need > 0 {
		if err := c.rs.ReconstructData(shards); err != nil {
			return nil, nil, fmt.Errorf("%w: erasure decoding: %v", ErrBlockMismatch, err)
		}
		for j := 0; j < k; j++ {
			if &shards[j][0] != &b[j*ss] { // the library allocated instead
				copy(b[j*ss:], shards[j])
			}
		}
	}
	ct := b[:h.CipherLen]
	for _, x := range b[h.CipherLen:] {
		if x != 0 {
			return nil, nil, fmt.Errorf("%w: non-zero shard padding", ErrBlockMismatch)
		}
	}
	keys := c.aeadKeys(id, h.Compressed)
	aead, err := newGCM(keys.key[:])
	if err != nil {
		return nil, nil, err
	}
	aad := c.aad(id, h.Compressed)
	if !h.Compressed {
		if pooled {
			out, err := aead.Open(ct[:0], h.Nonce[:], ct, aad)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: decrypt: %v", ErrBlockMismatch, err)
			}
			keep = true
			buf.b = out
			return out, buf, nil
		}
		out := make([]byte, h.CipherLen-gcmTagSize)
		if _, err := aead.Open(out[:0], h.Nonce[:], ct, aad); err != nil {
			return nil, nil, fmt.Errorf("%w: decrypt: %v", ErrBlockMismatch, err)
		}
		return out, nil, nil
	}
	pt, err := aead.Open(ct[:0], h.Nonce[:], ct, aad)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: decrypt: %v", ErrBlockMismatch, err)
	}
	size, err := s2.DecodedLen(pt)
	if err != nil || size > MaxBlockSize || size <= len(pt) {
		return nil, nil, fmt.Errorf("%w: bad compressed payload (length %d, %v)", ErrBlockMismatch, size, err)
	}
	var out []byte
	var ob *pooledBuf
	if pooled {
		ob = getBuf(size)
		out = ob.b
	} else {
		out = make([]byte, size)
	}
	if _, err := s2.Decode(out, pt); err != nil {
		if ob != nil {
			putBuf(ob)
		}
		return nil, nil, fmt.Errorf("%w: decompress: %v", ErrBlockMismatch, err)
	}
	return out, ob, nil
}

// checkBlock recomputes the block's multihash with its CID's prefix.
func checkBlock(c cid.Cid, data []byte) error {
	m := c.Hash()
	if len(m) == 2+sha256.Size && m[0] == mh.SHA2_256 && m[1] == sha256.Size { // the IPFS default
		sum := sha256.Sum256(data)
		if !bytes.Equal(sum[:], m[2:]) {
			return fmt.Errorf("%w: sha2-256 differs", ErrBlockMismatch)
		}
		return nil
	}
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("%w: hashing with the CID's prefix: %v", ErrBlockMismatch, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%w: got %s", ErrBlockMismatch, got)
	}
	return nil
}

// cidFixesBlock reports whether the CID's multihash is a cryptographic
// hash of at least 256 bits, so that in practice no two blocks share the
// CID and the nonce derived from it encrypts one plaintext only.
func cidFixesBlock(c cid.Cid) bool {
	p := c.Prefix()
	switch {
	case p.MhLength < 32:
		return false
	case p.MhType == mh.SHA2_256, p.MhType == mh.SHA2_512, p.MhType == mh.SHA3_256, p.MhType == mh.SHA3_384,
		p.MhType == mh.SHA3_512, p.MhType == mh.KECCAK_256, p.MhType == mh.KECCAK_512, p.MhType == mh.BLAKE3:
		return true
	case p.MhType >= mh.BLAKE2B_MIN && p.MhType <= mh.BLAKE2S_MAX:
		return true
	}
	return false
}

// worthCompressing guesses cheaply whether s2 pays: small blocks are simply
// tried; larger ones only when two 4 KiB samples (start and middle) shrink
// by at least 10%.
func worthCompressing(data []byte) bool {
	switch {
	case len(data) < 64:
		return len(data) > 0
	case len(data) <= 2*sampleWindow:
		return true
	}
	var tmp [2 * sampleWindow]byte // s2.MaxEncodedLen(4096) < 8192
	mid := len(data) / 2 &^ 63
	in, outLen := 0, 0
	for _, w := range [][]byte{data[:sampleWindow], data[mid : mid+sampleWindow]} {
		in += len(w)
		outLen += len(s2.Encode(tmp[:], w))
	}
	return outLen*sampleGain <= in*(sampleGain-1)
}

type aeadKeys struct {
	key   [32]byte
	nonce [nonceSize]byte
	siv   [32]byte
}

// params encodes what, besides the CID, changes the encrypted bytes: the
// coding and the flags. It is part of the AEAD key derivation and the AAD.
func (c *Codec) params(compressed bool) [6]byte {
	var p [6]byte
	p[0] = byte(c.coding.Mode)
	if compressed {
		p[1] = flagCompressed
	}
	binary.BigEndian.PutUint16(p[2:], uint16(c.coding.K))
	binary.BigEndian.PutUint16(p[4:], uint16(c.coding.N))
	return p
}

// aeadKeys derives the AES-256-GCM key, the nonce of an uncompressed block
// and the key of a compressed block's synthetic nonce, for one block,
// coding and compression flag.
func (c *Codec) aeadKeys(id string, compressed bool) aeadKeys {
	p := c.params(compressed)
	okm, err := hkdf.Expand(sha256.New, c.prk, infoAEADKey+string(p[:])+id, 32+nonceSize+32)
	if err != nil {
		panic(err) // only for lengths > 255*32
	}
	var k aeadKeys
	copy(k.key[:], okm)
	copy(k.nonce[:], okm[32:])
	copy(k.siv[:], okm[32+nonceSize:])
	return k
}

func (c *Codec) aad(id string, compressed bool) []byte {
	p := c.params(compressed)
	aad := make([]byte, 0, len(aadPrefix)+len(p)+len(id))
	aad = append(aad, aadPrefix...)
	aad = append(aad, p[:]...)
	return append(aad, id...)
}

// macHasher returns a keyed BLAKE3 hasher for the fragment tags of a block.
func (c *Codec) macHasher(id string) *blake3.Hasher {
	key, err := hkdf.Expand(sha256.New, c.prk, infoMACKey+id, 32)
	if err != nil {
		panic(err)
	}
	h, err := blake3.NewKeyed(key)
	if err != nil {
		panic(err)
	}
	return h
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Scratch and output buffers come from pools in size classes of four
// steps per power of two (5/4, 6/4, 7/4, 8/4 of the one below), from 4 KiB
// to 8 MiB; larger buffers are not pooled.
var bufPools [46]sync.Pool

// sizeClass returns the pool index and size for a buffer of n bytes, or
// ok == false when n is too large to pool.
func sizeClass(n int) (idx, size int, ok bool) {
	if n <= 4096 {
		return 0, 4096, true
	}
	e := bits.Len(uint(n-1)) - 3 // n is in (4<<e, 8<<e]
	m := (n + 1<<e - 1) >> e     // 5..8
	idx = (e-10)*4 + (m - 5) + 1
	if idx >= len(bufPools) {
		return 0, 0, false
	}
	return idx, m << e, true
}

// pooledBuf is a pooled byte slice. gen counts its trips back to the pool,
// so that a stale EncodedBlock cannot release it a second time.
type pooledBuf struct {
	b   []byte
	gen atomic.Uint64
}

func getBuf(n int) *pooledBuf {
	idx, size, ok := sizeClass(n)
	if !ok {
		return &pooledBuf{b: make([]byte, n)}
	}
	if v := bufPools[idx].Get(); v != nil {
		p := v.(*pooledBuf)
		p.b = p.b[:n]
		return p
	}
	return &pooledBuf{b: make([]byte, n, size)}
}

func putBuf(p *pooledBuf) {
	if idx, size, ok := sizeClass(cap(p.b)); ok && size == cap(p.b) {
		bufPools[idx].Put(p)
	}
}
