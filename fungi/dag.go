package fungi

import (
	"context"
	"sync"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// MemDAG is an in-memory ipld.DAGService. With DropLeaves, raw leaf blocks
// are counted but not kept (hashing a large file then costs no memory: the
// importer never reads leaves back).
type MemDAG struct {
	DropLeaves bool

	mu     sync.Mutex
	nodes  map[cid.Cid]ipld.Node
	leaves int64 // raw leaf bytes seen
}

var _ ipld.DAGService = (*MemDAG)(nil)

// NewMemDAG returns an empty MemDAG.
func NewMemDAG(dropLeaves bool) *MemDAG {
	return &MemDAG{DropLeaves: dropLeaves, nodes: map[cid.Cid]ipld.Node{}}
}

// Add keeps nd (or only counts it, for a dropped raw leaf).
func (d *MemDAG) Add(_ context.Context, nd ipld.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if nd.Cid().Prefix().Codec == cid.Raw {
		d.leaves += int64(len(nd.RawData()))
		if d.DropLeaves {
			return nil
		}
	}
	d.nodes[nd.Cid()] = nd
	return nil
}

// AddMany adds each node.
func (d *MemDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := d.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// Get returns a kept node or ipld.ErrNotFound.
func (d *MemDAG) Get(_ context.Context, c cid.Cid) (ipld.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	nd, ok := d.nodes[c]
	if !ok {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return nd, nil
}

// GetMany streams the kept nodes of cs.
func (d *MemDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		nd, err := d.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(out)
	return out
}

// Remove forgets a node.
func (d *MemDAG) Remove(_ context.Context, c cid.Cid) error {
	d.mu.Lock()
	delete(d.nodes, c)
	d.mu.Unlock()
	return nil
}

// RemoveMany forgets nodes.
func (d *MemDAG) RemoveMany(ctx context.Context, cs []cid.Cid) error {
	for _, c := range cs {
		d.Remove(ctx, c)
	}
	return nil
}

// Len returns the number of kept nodes.
func (d *MemDAG) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.nodes)
}
