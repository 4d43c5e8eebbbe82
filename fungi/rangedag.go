package fungi

import (
	"context"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// LeavesInRange returns the leaves of the UnixFS file nd that hold its
// bytes from..to (inclusive), found from the file's inner nodes (their
// block sizes) without fetching a leaf.
func LeavesInRange(ctx context.Context, dag ipld.NodeGetter, nd ipld.Node, from, to int64) (map[cid.Cid]bool, error) {
	out := map[cid.Cid]bool{}
	var walk func(nd ipld.Node, off int64) error
	walk = func(nd ipld.Node, off int64) error {
		if nd.Cid().Prefix().Codec == cid.Raw {
			out[nd.Cid()] = true
			return nil
		}
		fsn, err := ft.ExtractFSNode(nd)
		if err != nil {
			return err
		}
		off += int64(len(fsn.Data()))
		links := nd.Links()
		for i := 0; i < fsn.NumChildren() && i < len(links); i++ {
			size := int64(fsn.BlockSize(i))
			if off <= to && off+size > from {
				l := links[i]
				if l.Cid.Prefix().Codec == cid.Raw {
					out[l.Cid] = true
				} else {
					child, err := dag.Get(ctx, l.Cid)
					if err != nil {
						return err
					}
					if err := walk(child, off); err != nil {
						return err
					}
				}
			}
			off += size
		}
		return nil
	}
	return out, walk(nd, 0)
}

// OnlyLeaves is dag whose GetMany fetches inner nodes and the leaves in
// allowed, and skips the rest: a reader of a byte range then prefetches no
// leaf beyond the range (boxo's readers ask for the next ten children).
func OnlyLeaves(dag ipld.DAGService, allowed map[cid.Cid]bool) ipld.DAGService {
	return onlyLeaves{dag, allowed}
}

type onlyLeaves struct {
	ipld.DAGService
	allowed map[cid.Cid]bool
}

func (o onlyLeaves) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	want := make([]cid.Cid, 0, len(cs))
	for _, c := range cs {
		if c.Prefix().Codec != cid.Raw || o.allowed[c] {
			want = append(want, c)
		}
	}
	return o.DAGService.GetMany(ctx, want)
}
