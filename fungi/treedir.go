package fungi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// DirLink is one child of a directory being built.
type DirLink struct {
	Name  string
	Cid   cid.Cid
	Tsize uint64 // cumulative size of the child's DAG (dag-pb link Tsize)
}

// ErrBadDirLink: BuildDir was given an empty or duplicate name, a name
// holding '/', or an undefined CID.
var ErrBadDirLink = errors.New("bad directory entry")

// BuildDir returns the UnixFS directory holding links (names unique; any
// order), as Kubo's MFS would build it with profile p's settings: a basic
// directory, or a HAMT-sharded one past the profile's sharding threshold;
// its root CID, its Tsize (its own blocks' sizes plus the children's
// Tsizes) and all its blocks (root first, then the HAMT's sub-shards depth
// first).
//
// Kubo 0.43's MFS (`ipfs files mkdir`, `files cp`, `files stat --hash`)
// builds every directory with boxo's uio.DynamicDirectory, configured from
// Import.*: the CID builder (Import.CidVersion, sha2-256), MaxLinks
// (Import.UnixFSDirectoryMaxLinks, 0 = no limit, in both of our profiles),
// the HAMT fanout (Import.UnixFSHAMTDirectoryMaxFanout, 256), the sharding
// threshold (Import.UnixFSHAMTDirectorySizeThreshold, 256 KiB) and the size
// estimation (Import.UnixFSHAMTDirectorySizeEstimation: "links" by
// default, "block" under unixfs-v1-2025). BuildDir feeds the same
// directory the same settings, with the children as stub nodes that carry
// only a CID and a Tsize (all boxo reads of a child: ipld.MakeLink).
//
// The result depends only on the set of links: a directory is sharded
// exactly when its estimated size exceeds the threshold (boxo upgrades on
// "> threshold" and downgrades as soon as a removal brings it back to "<=
// threshold"), dag-pb links are sorted by name when encoded, and a HAMT is
// a canonical trie of the names' murmur3 hashes. A Kubo MFS directory that
// went through removals therefore has the same CID as BuildDir of its
// final entries; the one exception is a HAMT that Kubo loaded below the
// threshold (made under other settings) and that has not shrunk since.
//
// BuildDir is pure (no I/O) and safe for concurrent use. Its errors wrap
// ErrBadDirLink, or come from boxo for a profile it rejects (a HAMT fanout
// that is not a power of two and a multiple of 8).
func BuildDir(links []DirLink, p Profile) (root cid.Cid, tsize uint64, blks []blocks.Block, err error) {
	seen := make(map[string]struct{}, len(links))
	for _, l := range links {
		switch {
		case l.Name == "" || strings.Contains(l.Name, "/"):
			return cid.Undef, 0, nil, fmt.Errorf("%w: name %q", ErrBadDirLink, l.Name)
		case !l.Cid.Defined():
			return cid.Undef, 0, nil, fmt.Errorf("%w: %q has no CID", ErrBadDirLink, l.Name)
		}
		if _, dup := seen[l.Name]; dup {
			return cid.Undef, 0, nil, fmt.Errorf("%w: duplicate name %q", ErrBadDirLink, l.Name)
		}
		seen[l.Name] = struct{}{}
	}

	ctx := context.Background()
	dag := dirDAG{NewMemDAG(false)}
	estimation := p.HAMTSizeEstimation
	if p.HAMTShardingSize <= 0 {
		// "Never shard", as in boxo's UnixFSProfile. boxo's directory
		// would read a 0 threshold as "use the global uio.HAMTShardingSize";
		// without size estimation and MaxLinks it never shards.
		estimation = uio.SizeEstimationDisabled
	}
	dir, err := uio.NewDirectory(dag,
		uio.WithCidBuilder(p.CidBuilder()),
		uio.WithMaxLinks(0), // Import.UnixFSDirectoryMaxLinks in both Kubo profiles
		uio.WithMaxHAMTFanout(p.HAMTShardWidth),
		uio.WithSizeEstimationMode(estimation),
	)
	if err != nil {
		return cid.Undef, 0, nil, fmt.Errorf("build dir: %w", err)
	}
	// As mfs.newEmptyDirectory: the threshold is not a DirectoryOption.
	dir.SetHAMTShardingSize(p.HAMTShardingSize)
	for _, l := range links {
		if err := dir.AddChild(ctx, l.Name, &stubNode{c: l.Cid, tsize: l.Tsize}); err != nil {
			return cid.Undef, 0, nil, fmt.Errorf("build dir: add %q: %w", l.Name, err)
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		return cid.Undef, 0, nil, fmt.Errorf("build dir: %w", err)
	}
	tsize, err = nd.Size()
	if err != nil {
		return cid.Undef, 0, nil, err
	}
	blks, err = dag.collect(nd)
	if err != nil {
		return cid.Undef, 0, nil, fmt.Errorf("build dir: %w", err)
	}
	return nd.Cid(), tsize, blks, nil
}

// collect lists nd and, for a HAMT, its sub-shards (the links whose name
// is only the bucket prefix), pre-order.
func (d dirDAG) collect(nd ipld.Node) ([]blocks.Block, error) {
	out := []blocks.Block{nd}
	pn, ok := nd.(*mdag.ProtoNode)
	if !ok {
		return nil, fmt.Errorf("directory node is %T", nd)
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return nil, err
	}
	if fsn.Type() != ft.THAMTShard {
		return out, nil
	}
	padLen := len(fmt.Sprintf("%X", fsn.Fanout()-1))
	for _, l := range pn.Links() {
		if len(l.Name) != padLen {
			continue // an entry: its prefix, then its name
		}
		d.mu.Lock()
		sub, ok := d.nodes[l.Cid]
		d.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("sub-shard %s not built", l.Cid)
		}
		more, err := d.collect(sub)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// stubNode stands for a child in a directory being built: boxo's
// directories read only its CID and Size (through ipld.MakeLink). The nil
// embedded Node makes any other use panic, which the tests would catch
// after a boxo upgrade.
type stubNode struct {
	ipld.Node
	c     cid.Cid
	tsize uint64
}

func (s *stubNode) Cid() cid.Cid             { return s.c }
func (s *stubNode) Size() (uint64, error)    { return s.tsize, nil }
func (s *stubNode) String() string           { return s.c.String() }
func (s *stubNode) Loggable() map[string]any { return map[string]any{"stub": s.c.String()} }

// dirDAG is the DAG service of one BuildDir: a MemDAG of the directory's
// own nodes (HAMT shards) that drops the stubs boxo's HAMT adds for each
// child.
type dirDAG struct{ *MemDAG }

func (d dirDAG) Add(ctx context.Context, nd ipld.Node) error {
	if _, stub := nd.(*stubNode); stub {
		return nil
	}
	return d.MemDAG.Add(ctx, nd)
}

func (d dirDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := d.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}
