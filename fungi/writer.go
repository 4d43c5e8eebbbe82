package fungi

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	bufpool "github.com/libp2p/go-buffer-pool"
)

// Writer disperses an import: it is the ipld.DAGService the UnixFS importer
// writes to. Raw leaves are encoded into fragments and put on their targets
// by a bounded pool of workers while the import goes on; inner nodes, and
// raw leaves of at most InlineMax bytes (while the import's InlineBudget
// lasts), are kept for the manifest. Finish waits for the leaves and
// returns the manifest, or the first error.
//
// A Writer serves one import, from one goroutine (the importer's); it is not
// reusable.
type Writer struct {
	codec  *Codec
	coding Coding
	place  Placement

	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	// inner keeps the inner nodes (the importer reads directories back);
	// its Get, GetMany, Remove and RemoveMany serve the DAGService
	*MemDAG

	mu   sync.Mutex
	seen map[cid.Cid]bool // dispersed (or being dispersed) leaves
	// inline are the leaves kept in the manifest (their bytes are in
	// MemDAG), inlineBytes what they cost it
	inline      map[cid.Cid]bool
	inlineBytes int
	// storedOf is the fragment bytes written for each stored block
	storedOf map[cid.Cid]int
	err      error
	size     uint64
	leaves   uint64
	stored   uint64
	// Progress, if set, is called (from worker goroutines) with the content
	// bytes of each leaf once its fragments are stored.
	Progress func(n int64)
	// Admit, if set, is called with each distinct leaf before its
	// fragments are stored (from the importer's goroutine); an error fails
	// the import. The node uses it to mark blocks in flight, so that the
	// clean-up of another, failed add does not delete them.
	Admit func(block cid.Cid) error
	// InlineMax: Add keeps a raw leaf of at most this many bytes in the
	// manifest instead of dispersing it (-1: none). NewWriter sets
	// InlineLeafMax; set it before the first Add.
	InlineMax int
	// InlineBudget bounds the bytes (block and CID) of the leaves one
	// import keeps inline: the manifest is committed in one raft entry.
	// Past it, small leaves are dispersed. NewWriter sets MaxAddInline.
	InlineBudget int
}

var _ ipld.DAGService = (*Writer)(nil)

// NewWriter returns a Writer encoding with codec (of coding c) onto place,
// with up to parallel leaves in flight (0: one per CPU).
func NewWriter(ctx context.Context, codec *Codec, c Coding, place Placement, parallel int) *Writer {
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Writer{codec: codec, coding: c, place: place, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, parallel), MemDAG: NewMemDAG(false), seen: map[cid.Cid]bool{},
		inline: map[cid.Cid]bool{}, storedOf: map[cid.Cid]int{},
		InlineMax: InlineLeafMax, InlineBudget: MaxAddInline}
}

// Add takes one node of the import.
func (w *Writer) Add(ctx context.Context, nd ipld.Node) error { return w.add(ctx, nd, false) }

// importDAG is a Writer as ImportFile's DAG service. The raw leaves it is
// given are the chunker's buffers (go-buffer-pool), which nothing keeps
// once the leaf's CID is computed (the DAG builder links a leaf by CID and
// length): a dispersed leaf's buffer goes back to the chunker's pool once
// encoded, so an import reuses a few chunk buffers instead of allocating
// and zeroing one per block. Inline leaves keep theirs (the manifest holds
// them).
type importDAG struct{ *Writer }

func (d importDAG) Add(ctx context.Context, nd ipld.Node) error { return d.add(ctx, nd, true) }

// ImportTarget is w as the DAG service of an import whose raw leaves all
// come from ImportFile's chunker (ImportFile and ImportNode's files, even
// through a wrapper such as a progress step): their chunk buffers go back
// to the chunker's pool once encoded. ImportFile does this itself when
// given the Writer directly.
func ImportTarget(w *Writer) ipld.DAGService { return importDAG{w} }

// add is Add; with chunks, a dispersed leaf's bytes are a chunk buffer of
// the importer's to give back once encoded.
func (w *Writer) add(ctx context.Context, nd ipld.Node, chunks bool) error {
	if err := w.firstErr(); err != nil {
		return err
	}
	c := nd.Cid()
	if c.Prefix().Codec != cid.Raw {
		return w.MemDAG.Add(ctx, nd)
	}
	if w.keepInline(c, len(nd.RawData())) {
		if err := w.MemDAG.Add(ctx, nd); err != nil {
			return err
		}
		if w.Progress != nil {
			w.Progress(int64(len(nd.RawData())))
		}
		return nil
	}
	return w.disperse(ctx, c, nd.RawData(), chunks)
}

// keepInline decides whether a raw leaf of size bytes goes into the
// manifest, and counts it if so (a repeat of an inline leaf stays inline;
// one already dispersed is dispersed again, which stores nothing).
func (w *Writer) keepInline(c cid.Cid, size int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.inline[c] {
		cost := size + len(c.Bytes())
		if size > w.InlineMax || w.seen[c] || w.inlineBytes+cost > w.InlineBudget {
			return false
		}
		w.inline[c] = true
		w.inlineBytes += cost
	}
	w.size += uint64(size)
	w.leaves++
	return true
}

// Disperse stores blk as fragments whatever its codec, as Add does a raw
// leaf (a DAG import disperses big blocks of any codec). Like Add, it
// returns before the fragments are stored: Wait (or Finish) waits.
func (w *Writer) Disperse(ctx context.Context, blk blocks.Block) error {
	if err := w.firstErr(); err != nil {
		return err
	}
	return w.disperse(ctx, blk.Cid(), blk.RawData(), false)
}

func (w *Writer) disperse(ctx context.Context, c cid.Cid, data []byte, chunk bool) error {
	w.mu.Lock()
	w.size += uint64(len(data))
	w.leaves++
	dup := w.seen[c]
	w.seen[c] = true
	w.mu.Unlock()
	if dup {
		return nil // same content, same fragments: already stored
	}
	if w.Admit != nil {
		if err := w.Admit(c); err != nil {
			w.fail(err)
			return err
		}
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		size := len(data)
		n, err := w.storeLeaf(c, data, chunk)
		if err != nil {
			w.fail(fmt.Errorf("block %s: %w", c, err))
			return
		}
		w.mu.Lock()
		w.stored += uint64(n)
		w.storedOf[c] = n
		w.mu.Unlock()
		if w.Progress != nil {
			w.Progress(int64(size))
		}
	}()
	return nil
}

// storeLeaf encodes one leaf and puts its fragments, in parallel, on their
// targets.
func (w *Writer) storeLeaf(c cid.Cid, data []byte, chunk bool) (int, error) {
	enc, err := w.codec.Encode(c, data)
	if chunk {
		bufpool.Put(data) // Encode keeps nothing of it
	}
	if err != nil {
		return 0, err
	}
	defer enc.Release() // after every put has returned (stores copy)
	targets, err := w.place.Place(c, w.coding.N)
	if err != nil {
		return 0, err
	}
	// one request per target: its fragments of this block together
	type batch struct {
		store      FragmentStore
		keys, vals [][]byte
	}
	var batches []*batch
	byID := map[string]*batch{}
	for i, frag := range enc.Fragments {
		t := targets[i]
		b := byID[t.ID]
		if b == nil {
			b = &batch{store: t.Store}
			byID[t.ID] = b
			batches = append(batches, b)
		}
		b.keys = append(b.keys, FragmentKey(c, w.coding, i))
		b.vals = append(b.vals, frag)
	}
	errs := make(chan error, len(batches))
	for _, b := range batches {
		go func() { errs <- PutFragments(w.ctx, b.store, b.keys, b.vals) }()
	}
	var first error
	for range batches {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return enc.StoredBytes, first
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
		w.cancel()
	}
	w.mu.Unlock()
}

func (w *Writer) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// AddMany adds nodes in order.
func (w *Writer) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := w.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// Leaves returns the distinct leaves the import gave the writer to
// disperse (stored, failed or in flight; not those kept inline): after a
// failed add, the blocks whose fragments may be orphans. Call it after
// Finish.
func (w *Writer) Leaves() []cid.Cid {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]cid.Cid, 0, len(w.seen))
	for c := range w.seen {
		out = append(out, c)
	}
	return out
}

// DeleteBlocks removes the fragments of blocks from the targets place puts
// them on (those whose store is a FragmentDeleter), in parallel per
// target; best effort: it returns how many deletes succeeded and the first
// error.
func DeleteBlocks(ctx context.Context, place Placement, c Coding, blocks []cid.Cid) (int, error) {
	type job struct {
		store FragmentDeleter
		key   []byte
	}
	per := map[string][]job{}
	for _, b := range blocks {
		targets, err := place.Place(b, c.N)
		if err != nil {
			return 0, err
		}
		for i, t := range targets {
			if d, ok := t.Store.(FragmentDeleter); ok {
				per[t.ID] = append(per[t.ID], job{d, FragmentKey(b, c, i)})
			}
		}
	}
	var (
		mu    sync.Mutex
		n     int
		first error
		wg    sync.WaitGroup
	)
	for _, jobs := range per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, j := range jobs {
				err := j.store.DeleteFragment(ctx, j.key)
				mu.Lock()
				if err == nil {
					n++
				} else if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n, first
}

// Wait waits for every block given so far to be stored and returns the
// first error. The Writer stays usable (a DAG import calls it before it
// builds its manifests).
func (w *Writer) Wait() error {
	w.wg.Wait()
	return w.firstErr()
}

// StoredBytes returns the fragment bytes written for a block this Writer
// stored (0 if it did not, or not yet).
func (w *Writer) StoredBytes(c cid.Cid) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.storedOf[c]
}

// Coding returns the coding the Writer encodes with.
func (w *Writer) Coding() Coding { return w.coding }

// Pool returns the pool the Writer places fragments on, as a manifest
// records it (nil unless the placement is a Spread).
func (w *Writer) Pool() []PoolMember {
	var out []PoolMember
	if sp, ok := w.place.(Spread); ok {
		for _, t := range sp.Pool {
			out = append(out, PoolMember{ID: t.ID, Domain: t.Domain})
		}
	}
	return out
}

// Close releases the Writer after Wait (Finish does it itself).
func (w *Writer) Close() { w.cancel() }

// Finish waits for every leaf and returns the manifest of root: the inner
// nodes and inline leaves reachable from it (intermediate directory
// versions the importer replaced are dropped).
func (w *Writer) Finish(root cid.Cid) (*Manifest, error) {
	w.wg.Wait()
	defer w.cancel()
	if err := w.firstErr(); err != nil {
		return nil, err
	}
	m := &Manifest{Root: root, Coding: w.coding, Size: w.size, Leaves: w.leaves, Stored: w.stored,
		Nodes: map[cid.Cid]blocks.Block{}}
	w.mu.Lock()
	dispersed := len(w.seen) > 0
	w.mu.Unlock()
	if dispersed {
		// with no fragment anywhere there is no placement to record: the
		// manifest of an all-inline object depends on its content alone,
		// so an add sent again (after a failover) commits the same bytes
		// and changes nothing
		m.Pool = w.Pool()
	}
	var walk func(c cid.Cid) error
	walk = func(c cid.Cid) error {
		if c.Prefix().Codec == cid.Raw && !w.inline[c] {
			return nil // dispersed
		}
		if _, done := m.Nodes[c]; done {
			return nil
		}
		nd, err := w.MemDAG.Get(w.ctx, c)
		if err != nil {
			return fmt.Errorf("import lost node %s", c)
		}
		m.Nodes[c] = nd
		for _, l := range nd.Links() {
			if err := walk(l.Cid); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return m, nil
}
