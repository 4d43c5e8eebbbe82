package fungi

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// ErrUnavailable: fewer than K valid fragments of a block could be fetched.
var ErrUnavailable = errors.New("content unavailable")

// Reader fetches and decodes blocks. For each block it asks the K holders
// it expects to answer first (by a latency estimate it keeps per holder),
// verifies each fragment as it arrives, sends a hedged request to one more
// holder whenever the block is slower than expected or a fragment fails,
// decodes as soon as K valid fragments are in and cancels the rest. Nothing
// decoded is returned unless it matches the block's CID (the codec checks).
//
// Safe for concurrent use.
type Reader struct {
	codec  *Codec
	coding Coding
	place  Placement

	// HedgeAfter is how long a block may take beyond the expected latency
	// of its slowest chosen holder before one more holder is asked
	// (default 20 ms).
	HedgeAfter time.Duration
	// OnBadFragment, if set, hears of every fragment that failed (target,
	// fragment index, error): a corrupt, forged or missing fragment, or a
	// holder that failed to answer.
	OnBadFragment func(target string, block cid.Cid, index int, err error)
	// OnFetched, if set, hears of every valid fragment fetched (target).
	OnFetched func(target string)

	lat   *Latency
	cache *BlockCache
}

// NewReader returns a Reader of blocks coded with c, found through place,
// keeping up to cacheBytes of decoded blocks.
func NewReader(codec *Codec, c Coding, place Placement, cacheBytes int64) *Reader {
	return &Reader{codec: codec, coding: c, place: place, HedgeAfter: 20 * time.Millisecond,
		lat: NewLatency(), cache: NewBlockCache(cacheBytes)}
}

// SetCache makes the reader keep decoded blocks in c, shared with other
// readers (a node's readers of many objects share one budget).
func (r *Reader) SetCache(c *BlockCache) { r.cache = c }

// Latency returns the reader's per-holder latency estimates.
func (r *Reader) Latency() *Latency { return r.lat }

// SetLatency makes the reader use (and update) l, shared with other
// readers: what one object's reads learn about holders serves the next.
func (r *Reader) SetLatency(l *Latency) { r.lat = l }

type fetched struct {
	index   int
	data    []byte
	release func() // gives data's buffer back (nil: nothing to give)
	err     error
	took    time.Duration
}

// Block returns the verified content of a leaf block.
func (r *Reader) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	if b, ok := r.cache.get(c); ok {
		return b, nil
	}
	b, _, err := r.fetch(ctx, c, false)
	if err != nil {
		return nil, err
	}
	r.cache.put(c, b)
	return b, nil
}

// BlockBuf returns the verified content of a leaf block for a single use
// (a stream writing it out): from the cache when it is there, else fetched
// into a pooled buffer and not cached. Release the Buf once done with it.
func (r *Reader) BlockBuf(ctx context.Context, c cid.Cid) (Buf, error) {
	if b, ok := r.cache.get(c); ok {
		return Buf{B: b}, nil
	}
	b, p, err := r.fetch(ctx, c, true)
	if err != nil {
		return Buf{}, err
	}
	return Buf{B: b, p: p}, nil
}

// fetch gets K fragments of c from the nearest holders and decodes them.
//
// When c's hash is cryptographic (cidFixesBlock), fragments are decoded
// optimistically: only their headers are checked as they arrive, not
// their tags, since the decoded block is checked against c anyway (and
// AES-GCM authenticates it). That saves hashing every fragment (a BLAKE3
// over each byte read). If the block fails, the tags are checked then, to
// find the bad fragments: they are reported and replaced by others, as
// when checked on arrival.
//
// Fragments of stores that pool them (PooledFragmentGetter) go back to
// the pool once decoded.
// With pooled, the block is returned in a pooled buffer too.
func (r *Reader) fetch(ctx context.Context, c cid.Cid, pooled bool) ([]byte, *pooledBuf, error) {
	k, n := r.coding.K, r.coding.N
	targets, err := r.place.Place(c, n)
	if err != nil {
		return nil, nil, err
	}
	// nearest holders first; in systematic mode prefer data fragments at
	// equal latency (they decode without solving)
	order := make([]int, n)
	est := make([]time.Duration, n)
	for i := range order {
		order[i] = i
		est[i] = r.lat.Estimate(targets[i].ID)
	}
	sort.SliceStable(order, func(a, b int) bool { return est[order[a]] < est[order[b]] })

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan fetched, n)
	next, inflight, valid := 0, 0, 0
	var slowest time.Duration
	started := make([]time.Time, n) // zero: not asked, or answered
	launch := func() {
		i := order[next]
		next++
		inflight++
		started[i] = time.Now()
		slowest = max(slowest, est[i])
		t := targets[i]
		go func() {
			start := time.Now()
			f := fetched{index: i}
			if pg, ok := t.Store.(PooledFragmentGetter); ok {
				f.data, f.release, f.err = pg.GetFragmentPooled(ctx, FragmentKey(c, r.coding, i))
			} else {
				f.data, f.err = t.Store.GetFragment(ctx, FragmentKey(c, r.coding, i))
			}
			f.took = time.Since(start)
			results <- f
		}()
	}
	for next < n && valid+inflight < k {
		launch()
	}
	hedge := time.NewTimer(slowest + r.HedgeAfter)
	defer hedge.Stop()
	frags := make([][]byte, n)
	releases := make([]func(), n) // of the fragments in frags
	release := func(i int) {
		if releases[i] != nil {
			releases[i]()
			releases[i] = nil
		}
		frags[i] = nil
	}
	defer func() {
		for i := range frags {
			release(i)
		}
	}()
	optimistic := cidFixesBlock(c)
	var lastErr error
	bad := func(i int, err error) {
		t := targets[i]
		r.lat.Fail(t.ID)
		lastErr = err
		if r.OnBadFragment != nil {
			r.OnBadFragment(t.ID, c, i, err)
		}
	}
	for {
		select {
		case f := <-results:
			inflight--
			started[f.index] = time.Time{}
			t := targets[f.index]
			if f.err == nil {
				if optimistic {
					f.err = r.codec.checkSlot(f.index, f.data)
				} else {
					f.err = r.codec.Verify(c, f.index, f.data)
				}
			}
			if f.err != nil {
				if f.release != nil {
					f.release()
				}
				if !errors.Is(f.err, context.Canceled) {
					bad(f.index, f.err)
				}
			} else {
				r.lat.Observe(t.ID, f.took)
				if r.OnFetched != nil {
					r.OnFetched(t.ID)
				}
				frags[f.index], releases[f.index] = f.data, f.release
				valid++
			}
			if valid >= k {
				data, out, err := r.codec.decode(c, frags, true, pooled)
				if err != nil && optimistic {
					// a fragment lied in a way its header did not show:
					// its tag tells which
					optimistic = false
					valid = 0
					for i, fr := range frags {
						if fr == nil {
							continue
						}
						if verr := r.codec.Verify(c, i, fr); verr != nil {
							release(i)
							bad(i, verr)
						} else {
							valid++
						}
					}
					if valid >= k {
						data, out, err = r.codec.decode(c, frags, true, pooled)
					}
				}
				if valid >= k {
					cancel()
					// holders still silent were slower than this block took:
					// their estimates learn it (a hung holder sinks in the
					// ranking instead of being asked first again)
					for i, at := range started {
						if !at.IsZero() {
							if d := time.Since(at); d > est[i] {
								r.lat.Observe(targets[i].ID, d)
							}
						}
					}
					return data, out, err
				}
			}
			for next < n && valid+inflight < k {
				launch()
			}
			if inflight == 0 {
				return nil, nil, &UnavailableError{Block: c, Have: valid, Need: k, Last: lastErr}
			}
		case <-hedge.C:
			if next < n {
				launch()
				hedge.Reset(r.HedgeAfter)
			}
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// UnavailableError says how short of fragments a block was. Index and Root
// are filled in when the block is read as part of an object.
type UnavailableError struct {
	Block      cid.Cid
	Have, Need int
	Index      int // block number in the object, -1 if unknown
	Root       cid.Cid
	Last       error
}

func (e *UnavailableError) Error() string {
	where := "block " + e.Block.String()
	if e.Root.Defined() && e.Index >= 0 {
		where = fmt.Sprintf("block %d of %s", e.Index, e.Root)
	}
	s := fmt.Sprintf("content unavailable: %d of %d required fragments reachable for %s", e.Have, e.Need, where)
	if e.Last != nil {
		s += " (last error: " + e.Last.Error() + ")"
	}
	return s
}

func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// DAG returns a read-only ipld.DAGService over an object: inner nodes come
// from the manifest, leaves from the fragment stores. GetMany fetches
// leaves in parallel (the UnixFS reader uses it to prefetch ahead).
func (r *Reader) DAG(m *Manifest) ipld.DAGService { return &objectDAG{r: r, m: m} }

type objectDAG struct {
	r *Reader
	m *Manifest

	once   sync.Once
	leafAt map[cid.Cid]int
}

// DecodeNode decodes a verified UnixFS block: dag-pb or raw; any other
// codec is an error naming the tools that read it.
func DecodeNode(blk blocks.Block) (ipld.Node, error) { return decodeNode(blk) }

func decodeNode(blk blocks.Block) (ipld.Node, error) {
	switch blk.Cid().Prefix().Codec {
	case cid.Raw:
		// not NewRawNodeWPrefix: it hashes the data again, and every
		// block here is verified against its CID already
		return &mdag.RawNode{Block: blk}, nil
	case cid.DagProtobuf:
		return mdag.DecodeProtobufBlock(blk)
	}
	return nil, fmt.Errorf("%s is not UnixFS (codec 0x%x): read it with fungi dag export or fungi block get", blk.Cid(), blk.Cid().Prefix().Codec)
}

func (d *objectDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	if blk, ok := d.m.Nodes[c]; ok {
		return decodeNode(blk)
	}
	if c.Prefix().Codec != cid.Raw {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	data, err := d.r.Block(ctx, c)
	if err != nil {
		var ue *UnavailableError
		if errors.As(err, &ue) {
			ue.Root, ue.Index = d.m.Root, d.leafIndex(c)
		}
		return nil, err
	}
	blk, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return nil, err
	}
	return decodeNode(blk)
}

// leafIndex finds the first position of a leaf in the object, for errors.
func (d *objectDAG) leafIndex(c cid.Cid) int {
	d.once.Do(func() {
		d.leafAt = map[cid.Cid]int{}
		n := 0
		var walk func(c cid.Cid)
		walk = func(c cid.Cid) {
			blk, ok := d.m.Nodes[c]
			if !ok {
				if _, seen := d.leafAt[c]; !seen {
					d.leafAt[c] = n
				}
				n++
				return
			}
			nd, err := decodeNode(blk)
			if err != nil {
				return
			}
			for _, l := range nd.Links() {
				walk(l.Cid)
			}
		}
		walk(d.m.Root)
	})
	if i, ok := d.leafAt[c]; ok {
		return i
	}
	return -1
}

// GetMany fetches in parallel and delivers nodes as they are ready.
func (d *objectDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			nd, err := d.Get(ctx, c)
			out <- &ipld.NodeOption{Node: nd, Err: err}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

var errReadOnly = errors.New("read-only DAG")

// BlocksGetter gets single blocks and batches of them (BlockGetter and
// BlockBatchGetter).
type BlocksGetter interface {
	BlockGetter
	BlockBatchGetter
}

// BlockDAG is a read-only ipld.DAGService of UnixFS nodes over any block
// getter: for DAGs whose blocks span objects (an imported DAG completed by
// another import). GetMany fetches through GetBlocks (in parallel) and asks
// GetBlock for the error of a block that did not come.
func BlockDAG(g BlocksGetter) ipld.DAGService { return blockDAG{g} }

type blockDAG struct{ g BlocksGetter }

func (d blockDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	blk, err := d.g.GetBlock(ctx, c)
	if err != nil {
		return nil, err
	}
	return decodeNode(blk)
}

func (d blockDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	go func() {
		defer close(out)
		got := map[cid.Cid]bool{}
		for blk := range d.g.GetBlocks(ctx, cs) {
			got[blk.Cid()] = true
			nd, err := decodeNode(blk)
			out <- &ipld.NodeOption{Node: nd, Err: err}
		}
		for _, c := range cs {
			if !got[c] {
				got[c] = true
				nd, err := d.Get(ctx, c)
				out <- &ipld.NodeOption{Node: nd, Err: err}
			}
		}
	}()
	return out
}

func (blockDAG) Add(context.Context, ipld.Node) error        { return errReadOnly }
func (blockDAG) AddMany(context.Context, []ipld.Node) error  { return errReadOnly }
func (blockDAG) Remove(context.Context, cid.Cid) error       { return errReadOnly }
func (blockDAG) RemoveMany(context.Context, []cid.Cid) error { return errReadOnly }

func (d *objectDAG) Add(context.Context, ipld.Node) error        { return errReadOnly }
func (d *objectDAG) AddMany(context.Context, []ipld.Node) error  { return errReadOnly }
func (d *objectDAG) Remove(context.Context, cid.Cid) error       { return errReadOnly }
func (d *objectDAG) RemoveMany(context.Context, []cid.Cid) error { return errReadOnly }

// BlockCache keeps recently decoded blocks up to a byte budget (LRU).
// Safe for concurrent use.
type BlockCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order *list.List
	items map[cid.Cid]*list.Element
}

type cached struct {
	c    cid.Cid
	data []byte
}

// NewBlockCache returns a cache of up to max bytes (blocks larger than a
// quarter of it are not kept).
func NewBlockCache(max int64) *BlockCache {
	return &BlockCache{max: max, order: list.New(), items: map[cid.Cid]*list.Element{}}
}

func (bc *BlockCache) get(c cid.Cid) ([]byte, bool) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if e, ok := bc.items[c]; ok {
		bc.order.MoveToFront(e)
		return e.Value.(*cached).data, true
	}
	return nil, false
}

func (bc *BlockCache) put(c cid.Cid, data []byte) {
	if int64(len(data)) > bc.max/4 {
		return
	}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if _, ok := bc.items[c]; ok {
		return
	}
	bc.items[c] = bc.order.PushFront(&cached{c: c, data: data})
	bc.used += int64(len(data))
	for bc.used > bc.max {
		e := bc.order.Back()
		it := e.Value.(*cached)
		bc.order.Remove(e)
		delete(bc.items, it.c)
		bc.used -= int64(len(it.data))
	}
}

// Latency keeps a smoothed latency estimate per holder. Unknown holders
// get Prior's estimate (e.g. the network RTT measured by libp2p), else rank
// after known fast ones but before known slow or failing ones. A holder
// that failed is avoided for a while (failPenalty), then tried again at
// its old estimate: a node that restarted is not shunned forever.
type Latency struct {
	// Prior, if set, estimates a holder never observed (ok false: none).
	// It is called without the table's lock held.
	Prior func(id string) (time.Duration, bool)

	mu     sync.Mutex
	est    map[string]time.Duration
	failed map[string]time.Time
}

// NewLatency returns an empty table.
func NewLatency() *Latency {
	return &Latency{est: map[string]time.Duration{}, failed: map[string]time.Time{}}
}

const (
	unknownLatency = 5 * time.Millisecond
	// failPenalty is how long a failed holder ranks last.
	failPenalty = 10 * time.Second
	// failedLatency is the estimate of a holder while it ranks last.
	failedLatency = time.Second
)

// Estimate returns the holder's current estimate.
func (l *Latency) Estimate(id string) time.Duration {
	l.mu.Lock()
	d, ok := l.est[id]
	at, failed := l.failed[id]
	if failed && time.Since(at) > failPenalty {
		delete(l.failed, id)
		failed = false
	}
	l.mu.Unlock()
	if failed {
		return max(d, failedLatency)
	}
	if ok {
		return d
	}
	if l.Prior != nil {
		if d, ok := l.Prior(id); ok && d > 0 {
			return d
		}
	}
	return unknownLatency
}

// Observe folds in one measured latency (EWMA, 1/4 weight); the first
// observation replaces the prior.
func (l *Latency) Observe(id string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.est[id]; ok {
		d = (3*old + d) / 4
	}
	l.est[id] = d
	delete(l.failed, id)
}

// Set forces an estimate (from an RTT measured elsewhere, e.g. libp2p).
func (l *Latency) Set(id string, d time.Duration) {
	l.mu.Lock()
	l.est[id] = d
	l.mu.Unlock()
}

// Fail marks a holder that failed to deliver a valid fragment: it ranks
// last for failPenalty.
func (l *Latency) Fail(id string) {
	l.mu.Lock()
	l.failed[id] = time.Now()
	l.mu.Unlock()
}
