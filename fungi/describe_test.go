package fungi

import (
	"bytes"
	"context"
	"math"
	"os"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// profileV0 is Kubo's historical default (`ipfs add` with no options):
// CIDv0, dag-pb leaves holding the data.
var profileV0 = Profile{Name: "unixfs-v0-2015", CIDVersion: 0, ChunkSize: 256 << 10, FileDAGWidth: 174}

func importBytes(t testing.TB, data []byte, p Profile) (ipld.Node, *MemDAG) {
	t.Helper()
	dag := NewMemDAG(false)
	nd, err := ImportFile(context.Background(), bytes.NewReader(data), p, dag)
	if err != nil {
		t.Fatal(err)
	}
	return nd, dag
}

func protoNode(t testing.TB, data []byte, p Profile) *mdag.ProtoNode {
	t.Helper()
	nd := mdag.NodeWithData(data)
	if err := nd.SetCidBuilder(p.CidBuilder()); err != nil {
		t.Fatal(err)
	}
	return nd
}

// describeCases are nodes of every kind built by boxo, with what
// DescribeNode must say of them; FuzzDescribeNode seeds from them too.
func describeCases(t testing.TB) map[string]struct {
	nd   ipld.Node
	want NodeInfo
} {
	t.Helper()
	out := map[string]struct {
		nd   ipld.Node
		want NodeInfo
	}{}
	add := func(name string, nd ipld.Node, want NodeInfo) {
		out[name] = struct {
			nd   ipld.Node
			want NodeInfo
		}{nd, want}
	}
	tsize := func(nd ipld.Node) uint64 {
		s, err := nd.Size()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	small := content("describe-small", 1000)
	nd, _ := importBytes(t, small, DefaultProfile)
	add("raw leaf", nd, NodeInfo{Kind: NodeRaw, Size: 1000, Tsize: 1000})
	nd, _ = importBytes(t, small, profileV0)
	add("single-block file, CIDv0", nd, NodeInfo{Kind: NodeFile, Size: 1000, Tsize: uint64(len(nd.RawData()))})
	nd, _ = importBytes(t, nil, profileV0)
	add("empty file, CIDv0", nd, NodeInfo{Kind: NodeFile, Size: 0, Tsize: uint64(len(nd.RawData()))})

	big := content("describe-big", 3<<20+7)
	nd, _ = importBytes(t, big, DefaultProfile)
	add("multi-block file, raw leaves", nd, NodeInfo{Kind: NodeFile, Size: uint64(len(big)), Tsize: tsize(nd)})
	nd, dag := importBytes(t, big, profileV0)
	add("multi-block file, CIDv0", nd, NodeInfo{Kind: NodeFile, Size: uint64(len(big)), Tsize: tsize(nd)})
	leaf, err := dag.Get(context.Background(), nd.Links()[0].Cid)
	if err != nil {
		t.Fatal(err)
	}
	add("dag-pb leaf (UnixFS Raw)", leaf, NodeInfo{Kind: NodeFile, Size: 256 << 10, Tsize: uint64(len(leaf.RawData()))})

	links := generatedLinks("describe-", "describe", 10)
	_, ts, blks, err := BuildDir(links, DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	add("basic dir", blks[0].(ipld.Node), NodeInfo{Kind: NodeDir, Tsize: ts})
	_, ts, blks, err = BuildDir(generatedLinks("describe-", "describe", 5000), DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	add("HAMT dir", blks[0].(ipld.Node), NodeInfo{Kind: NodeHAMT, Tsize: ts})
	add("HAMT sub-shard", blks[1].(ipld.Node), NodeInfo{Kind: NodeHAMT, Tsize: tsize(blks[1].(ipld.Node))})

	sl, err := ft.SymlinkData("../some/where")
	if err != nil {
		t.Fatal(err)
	}
	nd = protoNode(t, sl, DefaultProfile)
	add("symlink", nd, NodeInfo{Kind: NodeSymlink, Size: 13, Target: "../some/where", Tsize: uint64(len(nd.RawData()))})

	mtime := time.Unix(1700000000, 123456789)
	nd = protoNode(t, ft.FilePBDataWithStat([]byte("hi"), 2, 0o644, mtime), DefaultProfile)
	add("file with mode and mtime", nd, NodeInfo{Kind: NodeFile, Size: 2, Mode: 0o644, Mtime: mtime, Tsize: uint64(len(nd.RawData()))})
	nd = protoNode(t, ft.FolderPBDataWithStat(os.ModeDir|os.ModeSetgid|os.ModeSticky|0o750, time.Unix(-5, 0)), DefaultProfile)
	add("dir with mode and mtime", nd, NodeInfo{Kind: NodeDir, Mode: 0o3750, Mtime: time.Unix(-5, 0), Tsize: uint64(len(nd.RawData()))})

	md, err := ft.BytesForMetadata(&ft.Metadata{MimeType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	nd = protoNode(t, md, DefaultProfile)
	add("UnixFS metadata", nd, NodeInfo{Kind: NodeOther, Tsize: uint64(len(nd.RawData()))})

	cbor := []byte{0xa1, 0x61, 0x61, 0x01} // {"a": 1}
	h, _ := mh.Sum(cbor, mh.SHA2_256, -1)
	blk, _ := blocks.NewBlockWithCid(cbor, cid.NewCidV1(cid.DagCBOR, h))
	add("dag-cbor", &mdag.RawNode{Block: blk}, NodeInfo{Kind: NodeOther, Tsize: 4})
	return out
}

func TestDescribeNode(t *testing.T) {
	for name, c := range describeCases(t) {
		t.Run(name, func(t *testing.T) {
			got, err := DescribeNode(c.nd)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Mtime.Equal(c.want.Mtime) {
				t.Errorf("mtime %v, want %v", got.Mtime, c.want.Mtime)
			}
			got.Mtime, c.want.Mtime = time.Time{}, time.Time{}
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			// The same from the bytes alone (a block, not a ProtoNode).
			if c.nd.Cid().Prefix().Codec == cid.DagProtobuf {
				blk, _ := blocks.NewBlockWithCid(c.nd.RawData(), c.nd.Cid())
				again, err := DescribeNode(&mdag.RawNode{Block: blk})
				again.Mtime = time.Time{}
				if err != nil || again != got {
					t.Errorf("from bytes: %+v, %v", again, err)
				}
			}
		})
	}
}

func TestDescribeNodeErrors(t *testing.T) {
	pbCID := func(data []byte) cid.Cid {
		h, _ := mh.Sum(data, mh.SHA2_256, -1)
		return cid.NewCidV0(h)
	}
	garbage := []byte{0xff, 0xff, 0xff}
	blk, _ := blocks.NewBlockWithCid(garbage, pbCID(garbage))
	if _, err := DescribeNode(&mdag.RawNode{Block: blk}); err == nil {
		t.Error("undecodable dag-pb described")
	}
	for name, data := range map[string][]byte{"no data": nil, "not UnixFS": {0x08, 0xff, 0xff, 0xff}, "no type": {0x18, 0x01}} {
		if _, err := DescribeNode(protoNode(t, data, DefaultProfile)); err == nil {
			t.Errorf("%s: described", name)
		}
	}
}

func TestDescribeNodeModeBits(t *testing.T) {
	for perms := uint32(0); perms <= 0o7777; perms++ {
		nd := protoNode(t, ft.FilePBDataWithStat(nil, 0, modeOf(perms), time.Time{}), DefaultProfile)
		got, err := DescribeNode(nd)
		if err != nil || got.Mode != perms {
			t.Fatalf("perms %o: mode %o, %v", perms, got.Mode, err)
		}
	}
}

func modeOf(perms uint32) os.FileMode {
	m := os.FileMode(perms & 0o777)
	if perms&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if perms&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if perms&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func TestDescribeNodeTsizeSaturates(t *testing.T) {
	nd := protoNode(t, ft.FolderPBData(), DefaultProfile)
	c := cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	for _, name := range []string{"a", "b", "c"} {
		if err := nd.AddRawLink(name, &ipld.Link{Cid: c, Size: math.MaxInt64 - 10}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DescribeNode(nd)
	if err != nil || got.Tsize != math.MaxUint64 {
		t.Errorf("tsize %d, %v", got.Tsize, err)
	}
}

// FuzzDescribeNode: any bytes that decode as dag-pb are described without
// a panic, consistently.
func FuzzDescribeNode(f *testing.F) {
	for _, c := range describeCases(f) {
		if c.nd.Cid().Prefix().Codec == cid.DagProtobuf {
			f.Add(c.nd.RawData())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nd, err := mdag.DecodeProtobuf(data)
		if err != nil {
			return
		}
		info, err := DescribeNode(nd)
		if err != nil {
			return
		}
		if info.Tsize < uint64(len(nd.RawData())) {
			t.Errorf("tsize %d below the block's %d bytes", info.Tsize, len(nd.RawData()))
		}
		if info.Kind == NodeSymlink && info.Size != uint64(len(info.Target)) {
			t.Errorf("symlink size %d, target %q", info.Size, info.Target)
		}
		if info.Kind != NodeSymlink && info.Target != "" {
			t.Errorf("%s with a target", info.Kind)
		}
	})
}
