package fungi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// PoolMember is a storage target as a manifest records it.
type PoolMember struct {
	ID     string
	Domain string
}

// Manifest is what must be replicated to read an object back: its root, how
// its leaves were coded, the inner DAG nodes (directories, file nodes with
// their links, symlinks) and the leaves small enough to keep inline.
//
// A manifest comes in two kinds. One made by a UnixFS add (encoding
// version 1) does not list its dispersed leaves: their CIDs are the raw
// links of the inner nodes that Nodes does not hold, and their fragments'
// keys derive from CID and coding (FragmentKey), so the per-block cost is
// the link in its parent node (~45 bytes for a CIDv1 sha2-256 leaf). Raw
// leaves of at most InlineLeafMax bytes are in Nodes with the inner nodes
// (an add made before that rule dispersed them too: both read alike). One made by a DAG import (Imported,
// version 2) holds blocks of any codec and may be partial (links to blocks
// it does not hold): Nodes are the blocks kept inline, and Dispersed lists
// exactly the blocks stored as fragments, with their sizes, so a block
// missing from the DAG is never mistaken for a stored one.
//
// Encoding, all integers unsigned varints:
//
//	"FZM" 0x01 | root cid | K | N | mode | size | leaves | stored bytes |
//	pool count | (id | domain)* | node count | (cid | data)*
//
//	"FZM" 0x02 | ... as version 1 ... | dispersed count | (cid | size)* |
//	missing count | cid*
//
// where cid and data are length-prefixed byte strings. Nodes, dispersed and
// missing blocks are sorted by CID bytes (a CID is in at most one of the
// three), and each node must hash to its CID: a decoded manifest is
// self-verifying.
type Manifest struct {
	Root   cid.Cid
	Coding Coding
	// Size is the bytes of file content (all leaves).
	Size uint64
	// Leaves is the number of leaf blocks (with repeats: a block that occurs
	// twice counts twice).
	Leaves uint64
	// Stored is the bytes of fragments written for it (before dedup).
	Stored uint64
	// Pool is the placement's pool when the object was written, in order:
	// with Spread, it determines where every fragment is.
	Pool []PoolMember
	// Nodes are the blocks kept inline, by CID: the inner nodes and the
	// small raw leaves (for an imported DAG: blocks of any codec).
	Nodes map[cid.Cid]blocks.Block
	// Imported marks a manifest made by a DAG import (encoding version 2):
	// its dispersed blocks are exactly Dispersed.
	Imported bool
	// Dispersed lists the blocks of an imported DAG stored as fragments,
	// sorted by CID bytes (MarshalBinary sorts).
	Dispersed []BlockRef
	// Missing lists what the blocks of an imported DAG link to that it
	// does not hold (other manifests may), sorted by CID bytes: empty when
	// the manifest holds everything reachable from its blocks.
	Missing []cid.Cid
	// Epoch is how many repair moves the cluster had made when the
	// manifest was committed: the later ones apply to its fragments
	// (Layout). Set by whoever loads it from the replicated state; not
	// part of the encoding.
	Epoch uint64
}

// SelfContained reports whether the manifest holds every block reachable
// from its blocks (a UnixFS add always does).
func (m *Manifest) SelfContained() bool { return !m.Imported || len(m.Missing) == 0 }

// Holds reports whether the manifest holds block c, inline or dispersed
// (for a UnixFS manifest: an inner node or a raw leaf it links to).
func (m *Manifest) Holds(c cid.Cid) bool {
	if _, ok := m.Nodes[c]; ok {
		return true
	}
	if m.Imported {
		_, ok := slices.BinarySearchFunc(m.Dispersed, c, func(d BlockRef, c cid.Cid) int { return bytes.Compare(d.CID.Bytes(), c.Bytes()) })
		return ok
	}
	if c.Prefix().Codec != cid.Raw {
		return false
	}
	leaves, err := m.LeafCIDs()
	return err == nil && slices.Contains(leaves, c)
}

// BlockRef names a block and gives its size.
type BlockRef struct {
	CID  cid.Cid
	Size uint32
}

const (
	manifestMagic   = "FZM\x01"
	manifestMagicV2 = "FZM\x02"
)

// Limits a manifest decoder enforces.
const (
	maxManifestNodes = 1 << 24
	maxPool          = 1 << 16
)

// ErrBadManifest marks undecodable manifest bytes.
var ErrBadManifest = errors.New("bad manifest")

// MarshalBinary encodes the manifest deterministically.
func (m *Manifest) MarshalBinary() ([]byte, error) {
	if !m.Root.Defined() {
		return nil, fmt.Errorf("%w: no root", ErrBadManifest)
	}
	if err := m.Coding.Validate(); err != nil {
		return nil, err
	}
	keys := make([]cid.Cid, 0, len(m.Nodes))
	size := 64
	for c, b := range m.Nodes {
		keys = append(keys, c)
		size += len(b.RawData()) + 48
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i].Bytes(), keys[j].Bytes()) < 0 })
	var disp []BlockRef
	if m.Imported {
		disp = slices.Clone(m.Dispersed)
		sort.Slice(disp, func(i, j int) bool { return bytes.Compare(disp[i].CID.Bytes(), disp[j].CID.Bytes()) < 0 })
		for i, d := range disp {
			if !d.CID.Defined() {
				return nil, fmt.Errorf("%w: undefined dispersed block", ErrBadManifest)
			}
			if i > 0 && disp[i-1].CID.Equals(d.CID) {
				return nil, fmt.Errorf("%w: block %s listed twice", ErrBadManifest, d.CID)
			}
			if _, ok := m.Nodes[d.CID]; ok {
				return nil, fmt.Errorf("%w: block %s both inline and dispersed", ErrBadManifest, d.CID)
			}
			size += 48
		}
	} else if len(m.Dispersed) > 0 || len(m.Missing) > 0 {
		return nil, fmt.Errorf("%w: dispersed or missing blocks listed in a UnixFS manifest", ErrBadManifest)
	}
	var missing []cid.Cid
	if m.Imported {
		missing = slices.Clone(m.Missing)
		sort.Slice(missing, func(i, j int) bool { return bytes.Compare(missing[i].Bytes(), missing[j].Bytes()) < 0 })
		for i, c := range missing {
			if !c.Defined() || (i > 0 && missing[i-1].Equals(c)) {
				return nil, fmt.Errorf("%w: missing block undefined or listed twice", ErrBadManifest)
			}
			if _, ok := m.Nodes[c]; ok {
				return nil, fmt.Errorf("%w: block %s both held and missing", ErrBadManifest, c)
			}
			size += 40
		}
		for _, d := range disp {
			if _, ok := slices.BinarySearchFunc(missing, d.CID, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) }); ok {
				return nil, fmt.Errorf("%w: block %s both held and missing", ErrBadManifest, d.CID)
			}
		}
	}
	b := make([]byte, 0, size)
	if m.Imported {
		b = append(b, manifestMagicV2...)
	} else {
		b = append(b, manifestMagic...)
	}
	b = appendBytes(b, m.Root.Bytes())
	b = binary.AppendUvarint(b, uint64(m.Coding.K))
	b = binary.AppendUvarint(b, uint64(m.Coding.N))
	b = append(b, byte(m.Coding.Mode))
	b = binary.AppendUvarint(b, m.Size)
	b = binary.AppendUvarint(b, m.Leaves)
	b = binary.AppendUvarint(b, m.Stored)
	b = binary.AppendUvarint(b, uint64(len(m.Pool)))
	for _, p := range m.Pool {
		b = appendBytes(b, []byte(p.ID))
		b = appendBytes(b, []byte(p.Domain))
	}
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, c := range keys {
		b = appendBytes(b, c.Bytes())
		b = appendBytes(b, m.Nodes[c].RawData())
	}
	if m.Imported {
		b = binary.AppendUvarint(b, uint64(len(disp)))
		for _, d := range disp {
			b = appendBytes(b, d.CID.Bytes())
			b = binary.AppendUvarint(b, uint64(d.Size))
		}
		b = binary.AppendUvarint(b, uint64(len(missing)))
		for _, c := range missing {
			b = appendBytes(b, c.Bytes())
		}
	}
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// UnmarshalBinary decodes and verifies a manifest: every node must hash to
// its CID, and the coding must be valid.
func (m *Manifest) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	var imported bool
	switch {
	case bytes.HasPrefix(data, []byte(manifestMagic)):
	case bytes.HasPrefix(data, []byte(manifestMagicV2)):
		imported = true
	default:
		return fmt.Errorf("%w: not a manifest (or an unknown version)", ErrBadManifest)
	}
	d.b = d.b[len(manifestMagic):]
	root, err := cid.Cast(d.bytes())
	if d.err == nil && err != nil {
		d.err = err
	}
	var out Manifest
	out.Root = root
	out.Imported = imported
	out.Coding.K = int(d.uvarint(256))
	out.Coding.N = int(d.uvarint(256))
	out.Coding.Mode = CodingMode(d.byte())
	out.Size = d.uvarint(1 << 62)
	out.Leaves = d.uvarint(1 << 62)
	out.Stored = d.uvarint(1 << 62)
	pn := d.uvarint(maxPool)
	for i := uint64(0); i < pn && d.err == nil; i++ {
		id, dom := d.bytes(), d.bytes()
		if d.err == nil && (len(id) == 0 || len(id) > 256 || len(dom) > 256) {
			d.err = errors.New("bad pool member")
		}
		out.Pool = append(out.Pool, PoolMember{ID: string(id), Domain: string(dom)})
	}
	n := d.count(4, "node count exceeds the data")
	out.Nodes = make(map[cid.Cid]blocks.Block, min(n, 1024))
	var raw []byte
	d.cidList(n, "nodes out of order", func() { raw = d.bytes() }, func(c cid.Cid) error {
		blk, err := blocks.NewBlockWithCid(bytes.Clone(raw), c)
		if err != nil {
			return err
		}
		if sum, err := c.Prefix().Sum(raw); err != nil || !sum.Equals(c) {
			return fmt.Errorf("node %s does not match its CID", c)
		}
		out.Nodes[c] = blk
		return nil
	})
	if imported {
		out.Dispersed = d.dispersed(out.Nodes)
		out.Missing = d.missing(out.Nodes, out.Dispersed)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err == nil {
		d.err = out.Coding.Validate()
	}
	if d.err != nil {
		return fmt.Errorf("%w: %v", ErrBadManifest, d.err)
	}
	*m = out
	return nil
}

// dispersed reads the dispersed blocks of a version 2 manifest.
func (d *decoder) dispersed(nodes map[cid.Cid]blocks.Block) []BlockRef {
	n := d.count(3, "dispersed count exceeds the data")
	out := make([]BlockRef, 0, min(n, 1024))
	var size uint64
	d.cidList(n, "dispersed blocks out of order", func() { size = d.uvarint(MaxBlockSize) }, func(c cid.Cid) error {
		if _, ok := nodes[c]; ok {
			return fmt.Errorf("block %s both inline and dispersed", c)
		}
		out = append(out, BlockRef{CID: c, Size: uint32(size)})
		return nil
	})
	return out
}

// missing reads the missing blocks of a version 2 manifest.
func (d *decoder) missing(nodes map[cid.Cid]blocks.Block, disp []BlockRef) []cid.Cid {
	n := d.count(3, "missing count exceeds the data")
	var out []cid.Cid
	d.cidList(n, "missing blocks out of order", nil, func(c cid.Cid) error {
		_, inline := nodes[c]
		_, dispersed := slices.BinarySearchFunc(disp, c, func(r BlockRef, c cid.Cid) int { return bytes.Compare(r.CID.Bytes(), c.Bytes()) })
		if inline || dispersed {
			return fmt.Errorf("block %s both held and missing", c)
		}
		out = append(out, c)
		return nil
	})
	return out
}

// count reads the length of a list whose entries take at least minEntry
// bytes each: more than the rest of the data can hold is an error (msg),
// so a forged count cannot make the decoder allocate for it.
func (d *decoder) count(minEntry int, msg string) uint64 {
	n := d.uvarint(maxManifestNodes)
	if d.err == nil && n > uint64(len(d.b)/minEntry) {
		d.err = errors.New(msg)
	}
	return n
}

// cidList reads n entries sorted strictly by CID bytes, each a CID
// followed by what fields (nil: nothing) reads, and calls each with the
// entry's CID once all of it was read. A CID out of order is an error
// (orderMsg); so is one each returns, which ends the list.
func (d *decoder) cidList(n uint64, orderMsg string, fields func(), each func(cid.Cid) error) {
	var last []byte
	for i := uint64(0); i < n && d.err == nil; i++ {
		cb := d.bytes()
		if fields != nil {
			fields()
		}
		if d.err != nil {
			break
		}
		c, err := cid.Cast(cb)
		if err != nil {
			d.err = err
			break
		}
		if last != nil && bytes.Compare(last, cb) >= 0 {
			d.err = errors.New(orderMsg)
			break
		}
		last = cb
		if err := each(c); err != nil {
			d.err = err
			break
		}
	}
}

// decoder reads varints and length-prefixed bytes, remembering the first
// error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	if v > max {
		d.err = fmt.Errorf("value %d out of range", v)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint(uint64(len(d.b)))
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errors.New("truncated")
	}
	if d.err != nil {
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// LeafCIDs returns the object's dispersed blocks: for a UnixFS manifest
// its leaves not kept inline, in content order (a leaf that occurs twice
// is listed twice), for an imported DAG the Dispersed blocks, by CID
// bytes. What it lists has fragments; nothing else of the object does.
func (m *Manifest) LeafCIDs() ([]cid.Cid, error) {
	if m.Imported {
		out := make([]cid.Cid, len(m.Dispersed))
		for i, d := range m.Dispersed {
			out[i] = d.CID
		}
		return out, nil
	}
	leaves, err := m.AllLeaves()
	var out []cid.Cid
	for _, l := range leaves {
		if !l.Inline {
			out = append(out, l.CID)
		}
	}
	return out, err
}

// LeafSizes returns the size of every dispersed block: for a UnixFS
// manifest from the Tsize of the links to its raw leaves not kept inline
// (a raw root not kept inline is the whole object), for an imported DAG
// from Dispersed.
func (m *Manifest) LeafSizes() (map[cid.Cid]int64, error) {
	out := map[cid.Cid]int64{}
	if m.Imported {
		for _, d := range m.Dispersed {
			out[d.CID] = int64(d.Size)
		}
		return out, nil
	}
	if _, ok := m.Nodes[m.Root]; !ok {
		if m.Root.Prefix().Codec != cid.Raw {
			return nil, fmt.Errorf("%w: node %s missing", ErrBadManifest, m.Root)
		}
		out[m.Root] = int64(m.Size)
		return out, nil
	}
	for _, blk := range m.Nodes {
		nd, err := decodeNode(blk)
		if err != nil {
			return nil, err
		}
		for _, l := range nd.Links() {
			if _, inner := m.Nodes[l.Cid]; inner || l.Cid.Prefix().Codec != cid.Raw {
				continue
			}
			out[l.Cid] = int64(l.Size)
		}
	}
	return out, nil
}

// Leaf is one leaf of an object: its block and where it lives.
type Leaf struct {
	CID cid.Cid
	// Inline: the block's bytes are in the manifest (Nodes); otherwise
	// it is dispersed as fragments.
	Inline bool
}

// AllLeaves returns the object's leaves, dispersed and inline: for a
// UnixFS manifest its raw leaves in content order (a leaf that occurs
// twice is listed twice), for an imported DAG the Dispersed blocks, then
// the inline blocks without links, each by CID bytes. The dispersed ones
// are LeafCIDs'.
func (m *Manifest) AllLeaves() ([]Leaf, error) {
	var out []Leaf
	if m.Imported {
		for _, d := range m.Dispersed {
			out = append(out, Leaf{CID: d.CID})
		}
		var inl []cid.Cid
		for c, blk := range m.Nodes {
			if links, err := Links(blk); err == nil && len(links) == 0 {
				inl = append(inl, c)
			}
		}
		slices.SortFunc(inl, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
		for _, c := range inl {
			out = append(out, Leaf{CID: c, Inline: true})
		}
		return out, nil
	}
	var walk func(c cid.Cid) error
	walk = func(c cid.Cid) error {
		blk, ok := m.Nodes[c]
		switch {
		case !ok && c.Prefix().Codec != cid.Raw:
			return fmt.Errorf("%w: node %s missing", ErrBadManifest, c)
		case c.Prefix().Codec == cid.Raw:
			out = append(out, Leaf{CID: c, Inline: ok})
			return nil
		}
		nd, err := decodeNode(blk)
		if err != nil {
			return err
		}
		for _, l := range nd.Links() {
			if err := walk(l.Cid); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(m.Root)
}
