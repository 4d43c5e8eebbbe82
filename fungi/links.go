package fungi

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ipfs/boxo/verifcid"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	dagpb "github.com/ipld/go-codec-dagpb"
	"github.com/ipld/go-ipld-prime/codec/cbor"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/codec/json"
	"github.com/ipld/go-ipld-prime/codec/raw"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/ipld/go-ipld-prime/traversal"
	mh "github.com/multiformats/go-multihash"
)

// ErrUnsupportedCodec: a block of a codec we cannot decode (so we cannot
// find its links). Kubo refuses the same blocks on import.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// ErrBadCID: a CID Kubo would refuse: an insecure hash function (MD5,
// SHA-1, murmur3...) or a digest too short or too long.
var ErrBadCID = errors.New("CID not allowed")

// The codecs whose links we can read: those Kubo 0.43 decodes without
// plugins.
var decoders = map[uint64]func(datamodel.NodeAssembler, []byte) error{
	cid.Raw:         func(na datamodel.NodeAssembler, b []byte) error { return raw.Decode(na, bytes.NewReader(b)) },
	cid.DagProtobuf: func(na datamodel.NodeAssembler, b []byte) error { return dagpb.DecodeBytes(na, b) },
	cid.DagCBOR:     func(na datamodel.NodeAssembler, b []byte) error { return dagcbor.Decode(na, bytes.NewReader(b)) },
	cid.DagJSON:     func(na datamodel.NodeAssembler, b []byte) error { return dagjson.Decode(na, bytes.NewReader(b)) },
	0x51:            func(na datamodel.NodeAssembler, b []byte) error { return cbor.Decode(na, bytes.NewReader(b)) }, // cbor
	0x0200:          func(na datamodel.NodeAssembler, b []byte) error { return json.Decode(na, bytes.NewReader(b)) }, // json
}

// CheckCID reports whether a block with this CID may be stored: its codec
// is one we can decode and its multihash one Kubo accepts (boxo's verifcid
// default allowlist: SHA-2, SHA-3, BLAKE2, BLAKE3, identity; digests of 20
// to 128 bytes).
func CheckCID(c cid.Cid) error {
	if _, ok := decoders[c.Prefix().Codec]; !ok {
		return fmt.Errorf("%s: %w 0x%x", c, ErrUnsupportedCodec, c.Prefix().Codec)
	}
	if err := verifcid.ValidateCid(verifcid.DefaultAllowlist, c); err != nil {
		return fmt.Errorf("%s: %w: %v", c, ErrBadCID, err)
	}
	return nil
}

// IsIdentity reports whether c carries its block in itself (identity
// multihash): such blocks are never stored.
func IsIdentity(c cid.Cid) bool { return c.Prefix().MhType == mh.IDENTITY }

// ErrStopWalk, returned by a WalkDAG visit, ends the walk without an
// error.
var ErrStopWalk = errors.New("walk stopped")

// WalkDAG visits each block reachable from root once, depth first (a
// block's links last to first). visit returns the links to follow from c
// (none: the walk goes no deeper there); an error from it ends the walk
// and is returned (ErrStopWalk: nil). Identity CIDs are never visited,
// their blocks are never stored: the walk follows the links that
// identityLinks reads from them (false: unreadable, an error).
func WalkDAG(root cid.Cid, identityLinks func(cid.Cid) ([]cid.Cid, bool), visit func(c cid.Cid) ([]cid.Cid, error)) error {
	seen := map[cid.Cid]bool{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		if IsIdentity(c) {
			links, ok := identityLinks(c)
			if !ok {
				return fmt.Errorf("identity CID %s: cannot read its links", c)
			}
			stack = append(stack, links...)
			continue
		}
		links, err := visit(c)
		if errors.Is(err, ErrStopWalk) {
			return nil
		}
		if err != nil {
			return err
		}
		stack = append(stack, links...)
	}
	return nil
}

// IdentityBlock returns the block an identity CID carries.
func IdentityBlock(c cid.Cid) (blocks.Block, error) {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(d.Digest, c)
}

// Links returns the CIDs blk links to, in the order a DAG traversal meets
// them: go-ipld-prime's data model order (for dag-pb, the links in order;
// for dag-cbor and dag-json, map entries as encoded), with repeats. This is
// the order in which Kubo's `dag export` (go-car's selector traversal)
// visits a block's children. Raw blocks have none.
func Links(blk blocks.Block) ([]cid.Cid, error) {
	c := blk.Cid()
	code := c.Prefix().Codec
	if code == cid.Raw {
		return nil, nil
	}
	dec, ok := decoders[code]
	if !ok {
		return nil, fmt.Errorf("%s: %w 0x%x", c, ErrUnsupportedCodec, code)
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dec(nb, blk.RawData()); err != nil {
		return nil, fmt.Errorf("decode %s: %w", c, err)
	}
	lnks, err := traversal.SelectLinks(nb.Build())
	if err != nil {
		return nil, fmt.Errorf("links of %s: %w", c, err)
	}
	if len(lnks) == 0 {
		return nil, nil
	}
	out := make([]cid.Cid, 0, len(lnks))
	for _, l := range lnks {
		cl, ok := l.(cidlink.Link)
		if !ok {
			return nil, fmt.Errorf("links of %s: a link that is not a CID", c)
		}
		out = append(out, cl.Cid)
	}
	return out, nil
}
