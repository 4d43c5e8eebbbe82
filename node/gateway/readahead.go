package gateway

import (
	"context"
	"sync"

	boxogw "github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/path"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"io"
)

// boxo writes a CAR by walking the DAG one block at a time: each block is
// asked for only when the walk reaches it, so a CAR of a large file would
// wait for one block's K fragments after another. A CAR request's context
// carries a readAhead: when the walk gets an inner node, the first
// readAheadWindow of its children are fetched in the background (in
// parallel, through GetBlocks), and each child the walk reaches moves the
// window on. The blocks land in the node's block cache, where the walk
// finds them (a block already being fetched is waited for, not fetched
// twice).
const readAheadWindow = 16

type readAheadKey struct{}

type readAhead struct {
	b  Blocks
	mu sync.Mutex
	// at says where a child stands among its parent's children.
	at      map[cid.Cid]siblings
	started map[cid.Cid]bool
}

type siblings struct {
	links []cid.Cid
	i     int
}

func withReadAhead(ctx context.Context, b Blocks) context.Context {
	return context.WithValue(ctx, readAheadKey{}, &readAhead{b: b, at: map[cid.Cid]siblings{}, started: map[cid.Cid]bool{}})
}

func readAheadOf(ctx context.Context) *readAhead {
	ra, _ := ctx.Value(readAheadKey{}).(*readAhead)
	return ra
}

// reached: the walk asks for c; fetch the window after it.
func (ra *readAhead) reached(ctx context.Context, c cid.Cid) {
	ra.mu.Lock()
	s, ok := ra.at[c]
	ra.mu.Unlock()
	if ok {
		ra.fetch(ctx, s.links[s.i+1:min(s.i+1+readAheadWindow, len(s.links))])
	}
}

// got: the walk has block b; if it has children, fetch the first window.
func (ra *readAhead) got(ctx context.Context, b blocks.Block) {
	if b.Cid().Prefix().Codec != cid.DagProtobuf {
		return
	}
	nd, err := merkledag.DecodeProtobuf(b.RawData())
	if err != nil || len(nd.Links()) == 0 {
		return
	}
	links := make([]cid.Cid, len(nd.Links()))
	for i, l := range nd.Links() {
		links[i] = l.Cid
	}
	ra.mu.Lock()
	for i, l := range links {
		if _, ok := ra.at[l]; !ok {
			ra.at[l] = siblings{links: links, i: i}
		}
	}
	ra.mu.Unlock()
	ra.fetch(ctx, links[:min(readAheadWindow, len(links))])
}

func (ra *readAhead) fetch(ctx context.Context, cs []cid.Cid) {
	var todo []cid.Cid
	ra.mu.Lock()
	for _, c := range cs {
		if !ra.started[c] {
			ra.started[c] = true
			todo = append(todo, c)
		}
	}
	ra.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	go func() {
		for range ra.b.GetBlocks(ctx, todo) {
		}
	}()
}

// GetCAR is boxo's, with the read-ahead on.
func (b *backend) GetCAR(ctx context.Context, p path.ImmutablePath, params boxogw.CarParams) (boxogw.ContentPathMetadata, io.ReadCloser, error) {
	return b.BlocksBackend.GetCAR(withReadAhead(ctx, b.blocks), p, params)
}
