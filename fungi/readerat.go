package fungi

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"
	"sync/atomic"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// LeafGetter fetches a leaf's block data (verified) — the node passes its reader.
type LeafGetter func(ctx context.Context, c cid.Cid) ([]byte, error)

// ReaderAtOptions tune a ReaderAt; zero values take the defaults.
type ReaderAtOptions struct {
	Prefetch   int // leaves fetched ahead of a sequential reader (0 = default 8); window may grow from 2 to this
	Parallel   int // leaves fetched at once (0 = default 8)
	CacheBytes int // leaf data kept per open file (0 = default 32 MiB)
}

// Defaults of ReaderAtOptions.
const (
	DefaultReaderAtPrefetch   = 8
	DefaultReaderAtParallel   = 8
	DefaultReaderAtCacheBytes = 32 << 20
)

// errSkipped marks a leaf a failing ReadAt did not fetch.
var errSkipped = errors.New("not fetched: another leaf of the read failed")

// Errors of NewReaderAt and ReadAt (besides a LeafGetter's, returned as
// they are).
var (
	// ErrNotAFile: NewReaderAt was given a directory, a symlink or a block
	// of another codec.
	ErrNotAFile = errors.New("not a UnixFS file")
	// ErrBadFileDAG: the file's nodes disagree (a child's size is not what
	// its parent says, a leaf is not a leaf): a corrupt or forged DAG.
	ErrBadFileDAG = errors.New("inconsistent UnixFS file DAG")
)

// maxLeafOverhead tells a dag-pb leaf from an inner node by its link
// alone, without fetching it: a leaf's block is its data plus at most
// ~35 bytes of protobuf (type, filesize, mode, mtime), while an inner
// node's Tsize exceeds its content by at least one link (38 bytes with a
// sha2-256 CID). A child that does not look like a leaf is fetched through
// the DAG (cheap: manifests hold inner nodes) and used as whatever it is.
const maxLeafOverhead = 37

// segment is a run of the file's bytes: a leaf to fetch, or data known
// from the walk (an inner node's own data, a raw root, a dag-pb node the
// walk fetched).
type segment struct {
	off, size int64
	cid       cid.Cid // the leaf; undefined when data is inline
	pb        bool    // a dag-pb leaf: the bytes are its UnixFS Data
	inline    []byte
}

// ReaderAt reads a UnixFS file by ranges: it fetches only the leaves a
// read touches (several at once), keeps recently used ones, and fetches
// ahead of a sequential reader. Safe for concurrent use; the memory it
// holds is bounded by CacheBytes plus the prefetches in flight.
type ReaderAt struct {
	get    LeafGetter
	segs   []segment
	size   int64
	opt    ReaderAtOptions
	maxWin int // prefetch window cap: Prefetch, and half the cache

	ctx    context.Context // fetches; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // prefetches

	mu        sync.Mutex
	closed    bool
	cache     map[cid.Cid]*list.Element // of *cacheEntry
	lru       list.List                 // front: most recently used
	cached    int                       // bytes in cache
	inflight  map[cid.Cid]*leafCall
	prefetchN int   // prefetches in flight
	seqEnd    int64 // end of the sequential streak; -1 before any read
	streak    int   // reads that moved seqEnd forward in a row
	pfFrom    int   // the prefetch window: segments [pfFrom, pfTo)
	pfTo      int
	pfFailed  map[cid.Cid]bool // prefetches that failed, until a fetch succeeds
}

type cacheEntry struct {
	c    cid.Cid
	data []byte
}

// leafCall is one fetch of a leaf, shared by everyone who wants it.
type leafCall struct {
	done     chan struct{}
	data     []byte
	err      error
	prefetch bool
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// NewReaderAt opens the UnixFS file whose root is nd: it walks the inner
// nodes once (through dag, which serves them from manifests, cheaply) into
// a table of leaves (offset, size, cid, raw or dag-pb leaf with inline
// data, and inner nodes' own inline data), then ReadAt fetches only the
// leaves a read touches, keeps recently used leaves, and when reads are
// sequential fetches the next leaves ahead in the background.
//
// ctx bounds the reader's life: every fetch uses it (ReadAt has none), and
// Close cancels it. nd may be a raw block (a one-block file), or a dag-pb
// UnixFS file (type File or Raw) with raw or dag-pb leaves, of any layout.
// The walk checks that every node's sizes add up to what its parent says
// (else ErrBadFileDAG); a table entry costs ~110 bytes per leaf.
func NewReaderAt(ctx context.Context, dag ipld.NodeGetter, nd ipld.Node, get LeafGetter, o ReaderAtOptions) (*ReaderAt, error) {
	if o.Prefetch <= 0 {
		o.Prefetch = DefaultReaderAtPrefetch
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultReaderAtParallel
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultReaderAtCacheBytes
	}
	segs, size, err := fileSegments(ctx, dag, nd)
	if err != nil {
		return nil, err
	}
	largest := int64(1)
	for _, s := range segs {
		largest = max(largest, s.size)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &ReaderAt{
		get: get, segs: segs, size: size, opt: o,
		maxWin: int(max(1, min(int64(o.Prefetch), int64(o.CacheBytes)/2/largest))),
		ctx:    ctx, cancel: cancel,
		cache: map[cid.Cid]*list.Element{}, inflight: map[cid.Cid]*leafCall{},
		pfFailed: map[cid.Cid]bool{}, seqEnd: -1,
	}, nil
}

// fileSegments walks the file's inner nodes level by level (one GetMany
// per level) into its segments, sorted by offset; empty leaves are left out.
func fileSegments(ctx context.Context, dag ipld.NodeGetter, nd ipld.Node) ([]segment, int64, error) {
	switch nd.Cid().Prefix().Codec {
	case cid.Raw:
		data := nd.RawData()
		if len(data) == 0 {
			return nil, 0, nil
		}
		return []segment{{size: int64(len(data)), inline: data}}, int64(len(data)), nil
	case cid.DagProtobuf:
	default:
		return nil, 0, fmt.Errorf("%s: %w (codec %#x)", nd.Cid(), ErrNotAFile, nd.Cid().Prefix().Codec)
	}
	type pending struct {
		c         cid.Cid
		off, size int64 // size: what the parent says; -1 for the root
	}
	ctx, cancel := context.WithCancel(ctx) // stops GetMany if we return early
	defer cancel()
	var segs []segment
	level := []pending{{c: nd.Cid(), size: -1}}
	got := map[cid.Cid]ipld.Node{nd.Cid(): nd}
	var total int64
	for len(level) > 0 {
		if len(got) == 0 {
			got = map[cid.Cid]ipld.Node{}
		}
		var want []cid.Cid
		for _, p := range level {
			if _, ok := got[p.c]; !ok {
				want = append(want, p.c)
				got[p.c] = nil
			}
		}
		if len(want) > 0 {
			for opt := range dag.GetMany(ctx, want) {
				if opt.Err != nil {
					return nil, 0, opt.Err
				}
				got[opt.Node.Cid()] = opt.Node
			}
		}
		var next []pending
		for _, p := range level {
			n := got[p.c]
			if n == nil {
				return nil, 0, fmt.Errorf("file node %s: %w", p.c, ipld.ErrNotFound{Cid: p.c})
			}
			pn, fsn, err := fileNode(n)
			if err != nil {
				return nil, 0, err
			}
			links := pn.Links()
			if fsn.NumChildren() != len(links) {
				return nil, 0, fmt.Errorf("%s: %w: %d links, %d block sizes", p.c, ErrBadFileDAG, len(links), fsn.NumChildren())
			}
			off := p.off
			if data := fsn.Data(); len(data) > 0 {
				segs = append(segs, segment{off: off, size: int64(len(data)), inline: data})
				off += int64(len(data))
			}
			for i, l := range links {
				bs := fsn.BlockSize(i)
				if int64(bs) < 0 || off+int64(bs) < off {
					return nil, 0, fmt.Errorf("%s: %w: block size %d", p.c, ErrBadFileDAG, bs)
				}
				size := int64(bs)
				switch {
				case size == 0 && l.Cid.Prefix().Codec == cid.Raw:
					// an empty raw leaf holds nothing to read
				case l.Cid.Prefix().Codec == cid.Raw:
					segs = append(segs, segment{off: off, size: size, cid: l.Cid})
				case l.Cid.Prefix().Codec == cid.DagProtobuf && l.Size >= bs && l.Size-bs <= maxLeafOverhead:
					if size > 0 {
						segs = append(segs, segment{off: off, size: size, cid: l.Cid, pb: true})
					}
				case l.Cid.Prefix().Codec == cid.DagProtobuf:
					next = append(next, pending{c: l.Cid, off: off, size: size})
				default:
					return nil, 0, fmt.Errorf("%s: %w: link to codec %#x", p.c, ErrBadFileDAG, l.Cid.Prefix().Codec)
				}
				off += size
			}
			switch {
			case p.size < 0:
				total = off
				if fs := fsn.FileSize(); uint64(total) != fs {
					return nil, 0, fmt.Errorf("%s: %w: filesize %d, content %d", p.c, ErrBadFileDAG, fs, total)
				}
			case off-p.off != p.size:
				return nil, 0, fmt.Errorf("%s: %w: holds %d bytes, its parent says %d", p.c, ErrBadFileDAG, off-p.off, p.size)
			}
		}
		level, got = next, nil
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].off < segs[j].off })
	return segs, total, nil
}

// fileNode decodes a dag-pb UnixFS file node.
func fileNode(n ipld.Node) (*mdag.ProtoNode, *ft.FSNode, error) {
	pn, ok := n.(*mdag.ProtoNode)
	if !ok {
		var err error
		if pn, err = mdag.DecodeProtobuf(n.RawData()); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", n.Cid(), err)
		}
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w: %v", n.Cid(), ErrNotAFile, err)
	}
	if t := fsn.Type(); t != ft.TFile && t != ft.TRaw {
		return nil, nil, fmt.Errorf("%s: %w (UnixFS %s)", n.Cid(), ErrNotAFile, t)
	}
	return pn, fsn, nil
}

// Size is the file's length in bytes.
func (r *ReaderAt) Size() uint64 { return uint64(r.size) }

// ReadAt reads len(p) bytes at off (io.ReaderAt): fewer, with io.EOF, at
// the end of the file. It fetches the leaves the range touches, up to
// Parallel at once. When a leaf cannot be had, it returns the bytes before
// that leaf and the LeafGetter's error as is: never wrong bytes. Safe for
// concurrent use; after Close it fails with fs.ErrClosed.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: %w", off, fs.ErrInvalid)
	}
	if off >= r.size || len(p) == 0 {
		switch {
		case r.isClosed():
			return 0, fs.ErrClosed
		case off >= r.size:
			return 0, io.EOF
		}
		return 0, nil
	}
	want := min(int64(len(p)), r.size-off)
	end := off + want
	first := r.segAt(off)
	last := r.segAt(end - 1)
	if err := r.noteRead(off, end); err != nil {
		return 0, err
	}

	// Fetch what is not inline, up to Parallel at once.
	datas := make([][]byte, last-first+1)
	errs := make([]error, len(datas))
	var toFetch []int
	for i := first; i <= last; i++ {
		if s := &r.segs[i]; s.inline != nil {
			datas[i-first] = s.inline
		} else {
			toFetch = append(toFetch, i)
		}
	}
	if len(toFetch) == 1 {
		i := toFetch[0]
		datas[i-first], errs[i-first] = r.leaf(i, false)
	} else if len(toFetch) > 1 {
		sem := make(chan struct{}, r.opt.Parallel)
		var wg sync.WaitGroup
		var failed atomic.Bool
		for _, i := range toFetch {
			sem <- struct{}{}
			if failed.Load() { // the read fails anyway: fetch no more
				errs[i-first] = errSkipped
				<-sem
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				datas[i-first], errs[i-first] = r.leaf(i, false)
				if errs[i-first] != nil {
					failed.Store(true)
				}
			})
		}
		wg.Wait()
	}

	n := 0
	for k, data := range datas {
		if errs[k] == errSkipped {
			// a later leaf failed first: report its error
			for _, err := range errs[k:] {
				if err != nil && err != errSkipped {
					return n, err
				}
			}
		}
		if errs[k] != nil {
			return n, errs[k]
		}
		s := &r.segs[first+k]
		from := max(off, s.off) - s.off
		to := min(end, s.off+s.size) - s.off
		n += copy(p[n:], data[from:to])
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// segAt is the index of the segment holding byte x (0 <= x < size).
func (r *ReaderAt) segAt(x int64) int {
	return sort.Search(len(r.segs), func(i int) bool { return r.segs[i].off+r.segs[i].size > x })
}

// noteRead updates the sequential-read detection with a read of
// [off, end) and starts the prefetches it calls for. A read of length L
// continues the streak when it starts at most L past the streak's end and
// ends at most 2L before it (the kernel issues two sequential reads at
// once, and they may arrive out of order), or when it falls in the leaf
// where the streak ends. Only a read that moves the streak's end forward
// lengthens it (doubling the window, from 2 up to maxWin) and moves the
// prefetch window; a re-read, or the later of two reads arriving out of
// order, keeps them.
func (r *ReaderAt) noteRead(off, end int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fs.ErrClosed
	}
	var seq bool
	if r.seqEnd < 0 {
		seq = off == 0
	} else {
		l := end - off
		cur := r.segAt(min(max(r.seqEnd-1, 0), r.size-1))
		seq = (off <= r.seqEnd+l && end >= r.seqEnd-2*l) || r.segAt(off) == cur
	}
	switch {
	case !seq:
		r.streak, r.seqEnd = 0, end
		r.pfFrom, r.pfTo = 0, 0
		return nil
	case end <= r.seqEnd:
		return nil
	}
	r.streak++
	r.seqEnd = end
	window := min(r.maxWin, 1<<min(r.streak, 30))
	r.pfFrom = r.segAt(r.seqEnd-1) + 1
	r.pfTo = min(r.pfFrom+window, len(r.segs))
	r.fillPrefetch()
	return nil
}

// fillPrefetch starts fetching the leaves of the prefetch window that are
// neither cached nor in flight, keeping at most a window's worth in
// flight. A leaf whose prefetch failed is left to the reads. r.mu is held.
func (r *ReaderAt) fillPrefetch() {
	for i := r.pfFrom; i < r.pfTo && r.prefetchN < r.pfTo-r.pfFrom; i++ {
		s := &r.segs[i]
		if s.inline != nil || r.pfFailed[s.cid] {
			continue
		}
		if _, ok := r.cache[s.cid]; ok {
			continue
		}
		if _, ok := r.inflight[s.cid]; ok {
			continue
		}
		call := &leafCall{done: make(chan struct{}), prefetch: true}
		r.inflight[s.cid] = call
		r.prefetchN++
		r.wg.Go(func() {
			r.fetch(s, call)
			r.mu.Lock()
			defer r.mu.Unlock()
			r.prefetchN--
			if call.err != nil {
				r.pfFailed[s.cid] = true
			} else if !r.closed {
				r.fillPrefetch() // the next leaf of the window, if one waits
			}
		})
	}
}

// leaf returns the data of segment i: from the cache, from a fetch in
// flight (a failed prefetch is retried here, once), or fetched now.
func (r *ReaderAt) leaf(i int, retried bool) ([]byte, error) {
	s := &r.segs[i]
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fs.ErrClosed
	}
	if e, ok := r.cache[s.cid]; ok {
		r.lru.MoveToFront(e)
		data := e.Value.(*cacheEntry).data
		r.mu.Unlock()
		return r.check(s, data)
	}
	call, ok := r.inflight[s.cid]
	if !ok {
		call = &leafCall{done: make(chan struct{})}
		r.inflight[s.cid] = call
		r.mu.Unlock()
		r.fetch(s, call)
	} else {
		r.mu.Unlock()
		select {
		case <-call.done:
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
	if call.err != nil {
		if call.prefetch && !retried {
			return r.leaf(i, true)
		}
		return nil, call.err
	}
	return r.check(s, call.data)
}

// check verifies a leaf's data has the size its parent says.
func (r *ReaderAt) check(s *segment, data []byte) ([]byte, error) {
	if int64(len(data)) != s.size {
		return nil, fmt.Errorf("leaf %s: %w: %d bytes, its parent says %d", s.cid, ErrBadFileDAG, len(data), s.size)
	}
	return data, nil
}

// fetch gets segment s's leaf for call (registered in inflight), caches
// it on success, and releases the waiters. Failures are not remembered.
func (r *ReaderAt) fetch(s *segment, call *leafCall) {
	data, err := r.get(r.ctx, s.cid)
	if err == nil && s.pb {
		data, err = pbLeafData(s.cid, data)
	}
	r.mu.Lock()
	delete(r.inflight, s.cid)
	if err == nil && !r.closed {
		r.put(s.cid, data)
		delete(r.pfFailed, s.cid)
	}
	r.mu.Unlock()
	call.data, call.err = data, err
	close(call.done)
}

// pbLeafData is the file data of a dag-pb leaf block.
func pbLeafData(c cid.Cid, raw []byte) ([]byte, error) {
	pn, err := mdag.DecodeProtobuf(raw)
	if err != nil {
		return nil, fmt.Errorf("leaf %s: %w: %v", c, ErrBadFileDAG, err)
	}
	if len(pn.Links()) > 0 {
		return nil, fmt.Errorf("leaf %s: %w: has %d links (its Tsize looked like a leaf's)", c, ErrBadFileDAG, len(pn.Links()))
	}
	_, fsn, err := fileNode(pn)
	if err != nil {
		return nil, fmt.Errorf("leaf %s: %w: %v", c, ErrBadFileDAG, err)
	}
	return fsn.Data(), nil
}

// put caches a leaf, evicting the least recently used beyond CacheBytes.
// r.mu is held.
func (r *ReaderAt) put(c cid.Cid, data []byte) {
	if _, ok := r.cache[c]; ok || len(data) > r.opt.CacheBytes {
		return
	}
	r.cache[c] = r.lru.PushFront(&cacheEntry{c: c, data: data})
	r.cached += len(data)
	for r.cached > r.opt.CacheBytes {
		e := r.lru.Back()
		ce := e.Value.(*cacheEntry)
		r.lru.Remove(e)
		delete(r.cache, ce.c)
		r.cached -= len(ce.data)
	}
}

func (r *ReaderAt) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close cancels the prefetches, waits for them and frees the cache. Reads
// in progress fail; later ones return fs.ErrClosed. Idempotent.
func (r *ReaderAt) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	r.cache, r.cached = map[cid.Cid]*list.Element{}, 0
	r.lru.Init()
	r.mu.Unlock()
	return nil
}
