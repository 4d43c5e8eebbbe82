package fungi

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/ipfs/boxo/files"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// NodeKind is what a block is, as a file system sees it.
type NodeKind uint8

const (
	NodeOther   NodeKind = iota // another codec, or a UnixFS type that is none of the below
	NodeFile                    // a UnixFS file (or a dag-pb leaf of one: UnixFS type Raw)
	NodeDir                     // a basic UnixFS directory
	NodeHAMT                    // a HAMT-sharded UnixFS directory (its root shard)
	NodeSymlink                 // a UnixFS symlink
	NodeRaw                     // a raw-codec block: a file of its bytes
)

func (k NodeKind) String() string {
	switch k {
	case NodeFile:
		return "file"
	case NodeDir:
		return "directory"
	case NodeHAMT:
		return "hamt-directory"
	case NodeSymlink:
		return "symlink"
	case NodeRaw:
		return "raw"
	case NodeOther:
		return "other"
	}
	return fmt.Sprintf("NodeKind(%d)", uint8(k))
}

// IsFile says the node is read as a file (NodeFile or NodeRaw).
func (k NodeKind) IsFile() bool { return k == NodeFile || k == NodeRaw }

// IsDir says the node is a directory (NodeDir or NodeHAMT).
func (k NodeKind) IsDir() bool { return k == NodeDir || k == NodeHAMT }

// NodeInfo is what DescribeNode learns from a root block alone.
type NodeInfo struct {
	Kind   NodeKind
	Size   uint64    // file: content bytes (UnixFS filesize, or raw block length); symlink: target length
	Tsize  uint64    // cumulative DAG size: len(raw block) + sum of its links' Tsize
	Target string    // symlink text
	Mode   uint32    // UnixFS mode if present, else 0
	Mtime  time.Time // UnixFS mtime if present, else zero
}

// DescribeNode says what nd is from its own block, without fetching
// anything: kind, sizes, symlink target, mode and mtime. It fails only
// for a dag-pb block that does not decode, or whose Data is not a UnixFS
// message; blocks of any other codec, and UnixFS types it does not know
// (Metadata), are NodeOther. A Tsize that would overflow (only forged
// links can say so) saturates at math.MaxUint64. Safe for concurrent use.
func DescribeNode(nd ipld.Node) (NodeInfo, error) {
	raw := nd.RawData()
	switch nd.Cid().Prefix().Codec {
	case cid.Raw:
		n := uint64(len(raw))
		return NodeInfo{Kind: NodeRaw, Size: n, Tsize: n}, nil
	case cid.DagProtobuf:
	default:
		return NodeInfo{Kind: NodeOther, Tsize: tsizeOf(uint64(len(raw)), nd.Links())}, nil
	}
	pn, ok := nd.(*mdag.ProtoNode)
	if !ok {
		var err error
		if pn, err = mdag.DecodeProtobuf(raw); err != nil {
			return NodeInfo{}, fmt.Errorf("describe %s: %w", nd.Cid(), err)
		}
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return NodeInfo{}, fmt.Errorf("describe %s: not UnixFS: %w", nd.Cid(), err)
	}
	info := NodeInfo{
		Tsize: tsizeOf(uint64(len(raw)), pn.Links()),
		Mode:  fsn.ExtendedMode()<<12 | files.ModePermsToUnixPerms(fsn.Mode()),
		Mtime: fsn.ModTime(),
	}
	switch fsn.Type() {
	case ft.TFile, ft.TRaw:
		info.Kind, info.Size = NodeFile, fsn.FileSize()
	case ft.TDirectory:
		info.Kind = NodeDir
	case ft.THAMTShard:
		info.Kind = NodeHAMT
	case ft.TSymlink:
		info.Kind, info.Target = NodeSymlink, string(fsn.Data())
		info.Size = uint64(len(info.Target))
	default:
		info.Kind = NodeOther
	}
	return info, nil
}

// tsizeOf is own plus the links' sizes, saturating.
func tsizeOf(own uint64, links []*ipld.Link) uint64 {
	sum := own
	for _, l := range links {
		var carry uint64
		if sum, carry = bits.Add64(sum, l.Size, 0); carry != 0 {
			return math.MaxUint64
		}
	}
	return sum
}
