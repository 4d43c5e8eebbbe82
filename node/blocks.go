package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/gateway"
)

// Blocks of any object the node can read, by CID: inner nodes (and other
// inline blocks) from the manifests, leaves decoded from their fragments
// by a reader with the same nearest-k, hedging and verification as cat.
// What the gateway, CAR export and `fungi block` read.

// blockSource keeps the block index in step with the manifests the node
// knows (the cluster's FSM and the repo's own), and a reader per recently
// used object, all sharing one cache of decoded blocks.
type blockSource struct {
	r *Repo

	mu       sync.Mutex // serialises syncs
	idx      *fungi.BlockIndex
	fsmAt    uint64             // FSM applied index the index reflects
	localGen uint64             // repo manifest generation it reflects
	local    map[cid.Cid]bool   // roots the repo itself recorded
	indexed  map[cid.Cid][]byte // the manifest bytes indexed, by root
	synced   bool

	objects *lru.Cache[cid.Cid, *blockObject]
	cache   *fungi.BlockCache

	flightMu sync.Mutex
	flights  map[cid.Cid]*flight

	prefetchOnce sync.Once
	pre          *prefetcher // read-ahead (prefetch.go)
}

// blockObject is a decoded manifest with its reader.
type blockObject struct {
	m  *fungi.Manifest
	rd *fungi.Reader
}

// blockCacheBytes is the node's budget for decoded blocks shared by block
// reads (the gateway's hot set).
const blockCacheBytes = 128 << 20

func newBlockSource(r *Repo) *blockSource {
	objects, _ := lru.New[cid.Cid, *blockObject](256)
	return &blockSource{r: r, idx: fungi.NewBlockIndex(), objects: objects, cache: fungi.NewBlockCache(blockCacheBytes)}
}

func (r *Repo) blockSource() *blockSource {
	r.blocksOnce.Do(func() { r.blocks = newBlockSource(r) })
	return r.blocks
}

// blockNotFound is a CID no known object holds: both ErrNotFound (the
// API's 404) and ipld.ErrNotFound (what boxo turns into a 404).
type blockNotFound struct{ c cid.Cid }

func (e blockNotFound) Error() string { return e.c.String() + ": " + ErrNotFound.Error() }
func (e blockNotFound) Is(target error) bool {
	_, ipldNF := target.(ipld.ErrNotFound)
	return target == ErrNotFound || ipldNF
}

// sync brings the index up to date: manifests added since are decoded and
// indexed, removed ones dropped. Cheap when nothing changed.
func (s *blockSource) sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fsm *consensus.FSM
	if cc := s.r.cluster; cc != nil {
		fsm = cc.fsm()
	}
	gen := s.r.localGen.Load()
	if s.synced && gen == s.localGen && (fsm == nil || fsm.AppliedIndex() == s.fsmAt) {
		return nil
	}
	want := map[cid.Cid][]byte{}
	if fsm != nil {
		s.fsmAt = fsm.AppliedIndex()
		fsm.RangeManifests(func(m consensus.Manifest) bool {
			if c, err := cid.Decode(m.Root); err == nil {
				want[c] = m.Data
			}
			return true
		})
	}
	if !s.synced || gen != s.localGen {
		local, err := s.r.localManifestBytes(ctx)
		if err != nil {
			return err
		}
		s.local = map[cid.Cid]bool{}
		for c, b := range local {
			s.local[c] = true
			if _, ok := want[c]; !ok {
				want[c] = b
			}
		}
		s.localGen = gen
	} else {
		// the repo's own manifests did not change: keep those indexed
		for c := range s.local {
			if _, ok := want[c]; !ok {
				want[c] = nil
			}
		}
	}
	for _, c := range s.idx.Roots() {
		if _, ok := want[c]; !ok {
			s.idx.Remove(c)
			s.objects.Remove(c)
			delete(s.indexed, c)
		}
	}
	if s.indexed == nil {
		s.indexed = map[cid.Cid][]byte{}
	}
	for c, b := range want {
		if b == nil || sameBytes(s.indexed[c], b) {
			continue
		}
		// new, or rewritten (the same root committed again, e.g. with
		// another pool): index what is there now
		s.objects.Remove(c)
		s.indexed[c] = b
		m := &fungi.Manifest{}
		if err := m.UnmarshalBinary(b); err != nil {
			s.r.log().Warn("block index: undecodable manifest", "root", c.String(), "err", err)
			continue
		}
		if err := s.idx.Add(m); err != nil {
			s.r.log().Warn("block index: manifest", "root", c.String(), "err", err)
		}
	}
	s.synced = true
	return nil
}

// sameBytes compares manifest bytes: the FSM hands out the same slice
// while a manifest is unchanged, so most checks are a pointer comparison.
func sameBytes(a, b []byte) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	return &a[0] == &b[0] || bytes.Equal(a, b)
}

// lookup finds c in the index; a node that does not know it first catches
// up with the leader once (it may have been committed a moment ago).
func (s *blockSource) lookup(ctx context.Context, c cid.Cid) (fungi.BlockInfo, error) {
	if err := s.sync(ctx); err != nil {
		return fungi.BlockInfo{}, err
	}
	if bi, ok := s.idx.Lookup(c); ok {
		return bi, nil
	}
	if cc := s.r.cluster; cc != nil {
		// look again even when catchUp waited for nothing: the manifest may
		// have been applied since the sync above
		cc.catchUp(ctx)
		if err := s.sync(ctx); err != nil {
			return fungi.BlockInfo{}, err
		}
		if bi, ok := s.idx.Lookup(c); ok {
			return bi, nil
		}
	}
	return fungi.BlockInfo{}, blockNotFound{c}
}

// objectOf returns the (cached) manifest and reader of an object holding
// c, when the block index knows c; no catch-up with the leader: a caller
// that gets false has its own way.
func (s *blockSource) objectOf(ctx context.Context, c cid.Cid) (*blockObject, bool) {
	if s.sync(ctx) != nil {
		return nil, false
	}
	bi, ok := s.idx.Lookup(c)
	if !ok {
		return nil, false
	}
	o, err := s.object(ctx, bi.Root)
	return o, err == nil
}

// object returns the decoded manifest and reader of root.
func (s *blockSource) object(ctx context.Context, root cid.Cid) (*blockObject, error) {
	if o, ok := s.objects.Get(root); ok {
		return o, nil
	}
	m, err := s.r.manifest(ctx, root)
	if err != nil {
		return nil, err
	}
	rd, err := s.r.reader(m)
	if err != nil {
		return nil, err
	}
	rd.SetCache(s.cache)
	o := &blockObject{m: m, rd: rd}
	s.objects.Add(root, o)
	return o, nil
}

// GetBlock returns the block c of any object the node can read, verified
// against its CID. Unknown CIDs give an error matching ErrNotFound (and
// ipld.ErrNotFound); a leaf whose holders cannot deliver K fragments gives
// one matching fungi.ErrUnavailable.
func (r *Repo) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		return identityBlock(c)
	}
	s := r.blockSource()
	bi, err := s.lookup(ctx, c)
	if errors.Is(err, ErrNotFound) && r.tree != nil {
		if b, ok := r.tree.Block(ctx, c); ok {
			return b, nil
		}
	}
	if err != nil {
		return nil, err
	}
	o, err := s.object(ctx, bi.Root)
	if err != nil {
		return nil, err
	}
	if b, ok := o.m.Nodes[c]; ok {
		return b, nil
	}
	data, err := s.leaf(ctx, o, c)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// flight is one leaf being fetched; others asking for it wait.
type flight struct {
	done chan struct{}
	data []byte
	err  error
}

// leaf reads a dispersed block through o's reader, once however many ask
// at the same time (a read-ahead and the read it runs ahead of).
func (s *blockSource) leaf(ctx context.Context, o *blockObject, c cid.Cid) ([]byte, error) {
	for {
		s.flightMu.Lock()
		f, waiting := s.flights[c]
		if !waiting {
			f = &flight{done: make(chan struct{})}
			if s.flights == nil {
				s.flights = map[cid.Cid]*flight{}
			}
			s.flights[c] = f
		}
		s.flightMu.Unlock()
		if !waiting {
			f.data, f.err = o.rd.Block(ctx, c)
			s.flightMu.Lock()
			delete(s.flights, c)
			s.flightMu.Unlock()
			close(f.done)
			return f.data, f.err
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// the one who fetched gave up (its request ended): fetch ourselves
		if errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded) {
			continue
		}
		return f.data, f.err
	}
}

// GetBlocks fetches blocks in parallel and delivers each as it is ready, in
// no particular order; a block that cannot be read is left out (GetBlock
// says why). The channel closes when all are done or ctx ends.
func (r *Repo) GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block {
	out := make(chan blocks.Block, len(cs))
	go func() {
		defer close(out)
		var wg sync.WaitGroup
		sem := make(chan struct{}, blockFetchParallel)
		for _, c := range cs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if b, err := r.GetBlock(ctx, c); err == nil {
					out <- b
				}
			}()
		}
		wg.Wait()
	}()
	return out
}

// blockFetchParallel bounds the blocks one GetBlocks decodes at once (each
// asks K holders in parallel).
const blockFetchParallel = 8

// HasBlock reports whether some object the node knows holds c, from the
// index alone (nothing is fetched).
func (r *Repo) HasBlock(ctx context.Context, c cid.Cid) (bool, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		return true, nil
	}
	_, err := r.blockSource().lookup(ctx, c)
	if errors.Is(err, ErrNotFound) {
		return r.tree != nil && r.tree.Has(ctx, c), nil
	}
	return err == nil, err
}

// BlockSize returns the size of block c from the index (fetching only
// for a leaf no manifest records the size of).
func (r *Repo) BlockSize(ctx context.Context, c cid.Cid) (int, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		b, err := identityBlock(c)
		if err != nil {
			return 0, err
		}
		return len(b.RawData()), nil
	}
	bi, err := r.blockSource().lookup(ctx, c)
	if errors.Is(err, ErrNotFound) && r.tree != nil {
		if b, ok := r.tree.Block(ctx, c); ok {
			return len(b.RawData()), nil
		}
	}
	if err != nil {
		return 0, err
	}
	if bi.Size >= 0 {
		return bi.Size, nil
	}
	b, err := r.GetBlock(ctx, c)
	if err != nil {
		return 0, err
	}
	return len(b.RawData()), nil
}

func identityBlock(c cid.Cid) (blocks.Block, error) {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	return blocks.NewBlockWithCid(bytes.Clone(d.Digest), c)
}

// OpenFile opens a UnixFS file for reading (and seeking) through the
// node's reader, as cat does.
func (r *Repo) OpenFile(ctx context.Context, c cid.Cid) (gateway.File, error) {
	return r.Cat(ctx, c)
}

// OpenFileRange opens a UnixFS file to read bytes from..to (inclusive)
// only: the reader fetches the leaves of that range and no others.
func (r *Repo) OpenFileRange(ctx context.Context, c cid.Cid, from, to int64) (gateway.File, error) {
	nd, dag, _, err := r.object(ctx, c)
	if err != nil {
		return nil, err
	}
	if isDir(nd) {
		return nil, fmt.Errorf("%s %w", c, ErrIsDirectory)
	}
	leaves, err := fungi.LeavesInRange(ctx, dag, nd, from, to)
	if err != nil {
		return nil, err
	}
	return uio.NewDagReader(ctx, nd, fungi.OnlyLeaves(dag, leaves))
}
