package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// Read-ahead for block requests that walk a file in order, as bitswap
// peers do: Kubo asks for a few leaves at a time, so without it each
// leaf's fetch from its holders would be paid in turn. A request for leaf
// i of an object warms leaves i+1..i+prefetchLeaves into the shared block
// cache, once each (a high-water mark per object), with at most
// prefetchParallel fetches running for the whole node; a fetch that finds
// no free slot is skipped, never queued.
const (
	prefetchLeaves   = 8
	prefetchParallel = 16
	prefetchTimeout  = 30 * time.Second
)

// leafOrder is an object's leaves in DAG order (depth-first, links in
// order), each at its first position.
type leafOrder struct {
	leaves []cid.Cid
	pos    map[cid.Cid]int
	ahead  atomic.Int64 // leaves up to this position were prefetched
}

func newLeafOrder(m *fungi.Manifest) *leafOrder {
	lo := &leafOrder{pos: map[cid.Cid]int{}}
	seen := map[cid.Cid]bool{}
	var walk func(c cid.Cid, depth int)
	walk = func(c cid.Cid, depth int) {
		if seen[c] || depth > 64 {
			return
		}
		seen[c] = true
		b, inner := m.Nodes[c]
		if !inner {
			lo.pos[c] = len(lo.leaves)
			lo.leaves = append(lo.leaves, c)
			return
		}
		links, err := fungi.Links(b)
		if err != nil {
			return
		}
		for _, l := range links {
			walk(l, depth+1)
		}
	}
	walk(m.Root, 0)
	lo.ahead.Store(-1)
	return lo
}

// prefetcher runs the read-aheads of a block source.
type prefetcher struct {
	slots  chan struct{}
	mu     sync.Mutex
	orders map[*blockObject]*leafOrder
}

func (s *blockSource) prefetch() *prefetcher {
	s.prefetchOnce.Do(func() {
		s.pre = &prefetcher{slots: make(chan struct{}, prefetchParallel), orders: map[*blockObject]*leafOrder{}}
	})
	return s.pre
}

func (p *prefetcher) order(o *blockObject) *leafOrder {
	p.mu.Lock()
	defer p.mu.Unlock()
	lo, ok := p.orders[o]
	if !ok {
		if len(p.orders) >= 256 { // objects the LRU dropped go too
			clear(p.orders)
		}
		lo = newLeafOrder(o.m)
		p.orders[o] = lo
	}
	return lo
}

// prefetchAfter warms the leaves that follow c in o.
func (s *blockSource) prefetchAfter(o *blockObject, c cid.Cid) {
	p := s.prefetch()
	lo := p.order(o)
	i, ok := lo.pos[c]
	if !ok {
		return
	}
	target := int64(min(i+prefetchLeaves, len(lo.leaves)-1))
	var from int64
	for {
		hw := lo.ahead.Load()
		if target <= hw {
			if hw-int64(i) <= 2*prefetchLeaves {
				return
			}
			// an earlier walk went further: this is a new one
			lo.ahead.CompareAndSwap(hw, int64(i))
			continue
		}
		if lo.ahead.CompareAndSwap(hw, target) {
			from = max(int64(i)+1, hw+1)
			break
		}
	}
	for j := from; j <= target; j++ {
		select {
		case p.slots <- struct{}{}:
		default:
			return // busy: the peer's own requests will fetch them
		}
		leaf := lo.leaves[j]
		go func() {
			defer func() { <-p.slots }()
			ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
			defer cancel()
			s.leaf(ctx, o, leaf)
		}()
	}
}

// GetBlockAhead is GetBlock for a reader that walks files in order (a
// bitswap peer): a leaf also warms the leaves after it.
func (r *Repo) GetBlockAhead(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	blk, err := r.GetBlock(ctx, c)
	if err != nil {
		return nil, err
	}
	s := r.blockSource()
	if bi, ok := s.idx.Lookup(c); ok && !bi.Inline {
		if o, ok := s.objects.Get(bi.Root); ok {
			s.prefetchAfter(o, c)
		}
	}
	return blk, nil
}
