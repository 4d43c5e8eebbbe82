package fungi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// countingGetter serves leaves from a MemDAG, counting calls per CID; fail,
// if set, can fail a call (n: the call's number for that CID, from 1).
type countingGetter struct {
	dag  *MemDAG
	fail func(c cid.Cid, n int) error
	// wait, if set, is called before serving (to hold a fetch).
	wait func(ctx context.Context, c cid.Cid) error

	mu    sync.Mutex
	calls map[cid.Cid]int
	order []cid.Cid
	seen  chan cid.Cid // each call's CID, if not nil (never blocks)
}

func newCountingGetter(dag *MemDAG) *countingGetter {
	return &countingGetter{dag: dag, calls: map[cid.Cid]int{}}
}

func (g *countingGetter) get(ctx context.Context, c cid.Cid) ([]byte, error) {
	g.mu.Lock()
	g.calls[c]++
	n := g.calls[c]
	g.order = append(g.order, c)
	if g.seen != nil {
		select {
		case g.seen <- c:
		default:
		}
	}
	g.mu.Unlock()
	if g.wait != nil {
		if err := g.wait(ctx, c); err != nil {
			return nil, err
		}
	}
	if g.fail != nil {
		if err := g.fail(c, n); err != nil {
			return nil, err
		}
	}
	nd, err := g.dag.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return nd.RawData(), nil
}

func (g *countingGetter) count(c cid.Cid) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[c]
}

func (g *countingGetter) total() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.order)
}

// leafGuard is the DAG given to NewReaderAt: it fails a Get of a leaf (a
// node without links), proving the walk fetches inner nodes only.
type leafGuard struct{ *MemDAG }

func (g leafGuard) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	nd, err := g.MemDAG.Get(ctx, c)
	if err == nil && len(nd.Links()) == 0 {
		return nil, fmt.Errorf("the walk fetched leaf %s", c)
	}
	return nd, err
}

func (g leafGuard) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		nd, err := g.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(out)
	return out
}

// fileLeaves lists the file's leaf segments in order.
func fileLeaves(r *ReaderAt) []segment {
	var out []segment
	for _, s := range r.segs {
		if s.inline == nil {
			out = append(out, s)
		}
	}
	return out
}

func openFile(t testing.TB, data []byte, p Profile, o ReaderAtOptions) (*ReaderAt, *countingGetter) {
	t.Helper()
	nd, dag := importBytes(t, data, p)
	g := newCountingGetter(dag)
	r, err := NewReaderAt(context.Background(), leafGuard{dag}, nd, g.get, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, g
}

// readerProfiles: Kubo's layouts and small-chunk ones that make deep trees.
var readerProfiles = []Profile{
	DefaultProfile,
	ProfileKuboV1,
	profileV0,
	{Name: "raw-1000x174", CIDVersion: 1, ChunkSize: 1000, FileDAGWidth: 174, RawLeaves: true},
	{Name: "raw-1024x1024", CIDVersion: 1, ChunkSize: 1024, FileDAGWidth: 1024, RawLeaves: true},
	{Name: "v0-4097x11", CIDVersion: 0, ChunkSize: 4097, FileDAGWidth: 11},
	{Name: "pb-v1-512x7", CIDVersion: 1, ChunkSize: 512, FileDAGWidth: 7},
}

func TestReaderAtMatchesContent(t *testing.T) {
	for _, p := range readerProfiles {
		c := int(p.ChunkSize)
		for _, size := range []int{0, 1, c - 1, c, c + 1, 3*c + 7, 2<<20 + 3} {
			t.Run(fmt.Sprintf("%s/%d", p.Name, size), func(t *testing.T) {
				data := randBytes(uint64(size), size)
				r, _ := openFile(t, data, p, ReaderAtOptions{})
				if r.Size() != uint64(size) {
					t.Fatalf("size %d, want %d", r.Size(), size)
				}
				checkRandomReads(t, r, data, 1000, rand.New(rand.NewPCG(uint64(size), 2)))
				got, err := io.ReadAll(io.NewSectionReader(r, 0, int64(size)))
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("sequential read: %d bytes, %v", len(got), err)
				}
				if n, err := r.ReadAt(make([]byte, 1), int64(size)); n != 0 || err != io.EOF {
					t.Errorf("read at the end: %d, %v", n, err)
				}
			})
		}
	}
}

func checkRandomReads(t testing.TB, r io.ReaderAt, data []byte, n int, rng *rand.Rand) {
	t.Helper()
	if err := randomReads(r, data, n, rng); err != nil {
		t.Fatal(err)
	}
}

// randomReads compares n reads at random offsets and lengths (some
// spanning most of the file) with data.
func randomReads(r io.ReaderAt, data []byte, n int, rng *rand.Rand) error {
	size := len(data)
	for range n {
		off := rng.IntN(size + 1)
		length := rng.IntN(min(size, 64<<10) + 2)
		if rng.IntN(10) == 0 {
			length = rng.IntN(size + 2)
		}
		buf := make([]byte, length)
		got, err := r.ReadAt(buf, int64(off))
		want := min(length, size-off)
		switch {
		case got != want || !bytes.Equal(buf[:got], data[off:off+got]):
			return fmt.Errorf("ReadAt(%d bytes, %d): %d bytes (want %d), content equal %v, %v",
				length, off, got, want, bytes.Equal(buf[:got], data[off:off+got]), err)
		case got < length && err != io.EOF:
			return fmt.Errorf("ReadAt(%d bytes, %d): short read with %v", length, off, err)
		case got == length && err != nil && err != io.EOF:
			return fmt.Errorf("ReadAt(%d bytes, %d): %v", length, off, err)
		}
	}
	return nil
}

// A raw block is a one-leaf file; an empty file of either kind reads as
// empty.
func TestReaderAtSmallFiles(t *testing.T) {
	ctx := context.Background()
	for _, p := range []Profile{DefaultProfile, profileV0} {
		for _, size := range []int{0, 1, 1000} {
			data := randBytes(7, size)
			nd, dag := importBytes(t, data, p)
			r, err := NewReaderAt(ctx, dag, nd, func(context.Context, cid.Cid) ([]byte, error) {
				return nil, errors.New("no leaf to fetch")
			}, ReaderAtOptions{})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, size+10)
			n, err := r.ReadAt(buf, 0)
			if n != size || err != io.EOF || !bytes.Equal(buf[:n], data) {
				t.Errorf("%s %d bytes: read %d, %v", p.Name, size, n, err)
			}
			r.Close()
		}
	}
}

// An inner node may hold data of its own before its children's (UnixFS
// allows it; boxo's importer never does it), and a dag-pb child whose
// Tsize does not look like a leaf's is fetched through the DAG and used
// as what it is.
func TestReaderAtInnerNodeData(t *testing.T) {
	ctx := context.Background()
	dag := NewMemDAG(false)
	rawLeaf := func(s string) ipld.Node {
		nd := mdag.NewRawNode([]byte(s))
		dag.Add(ctx, nd)
		return nd
	}
	fileOf := func(data string, children ...ipld.Node) *mdag.ProtoNode {
		fsn := ft.NewFSNode(ft.TFile)
		fsn.SetData([]byte(data))
		nd := new(mdag.ProtoNode)
		nd.SetCidBuilder(DefaultProfile.CidBuilder())
		for _, c := range children {
			_, cfs, err := fileSegments(ctx, dag, c)
			if err != nil {
				t.Fatal(err)
			}
			fsn.AddBlockSize(uint64(cfs))
			if err := nd.AddNodeLink("", c); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := fsn.GetBytes()
		nd.SetData(b)
		dag.Add(ctx, nd)
		return nd
	}
	inner := fileOf("CCC", rawLeaf("dd"), fileOf("leaf with data"), rawLeaf("eee"))
	root := fileOf("AAAA", rawLeaf("BB"), inner, fileOf(""), rawLeaf("F"))
	// A dag-pb leaf linked with a Tsize of 0: not taken for a leaf.
	odd := fileOf("odd leaf")
	root.AddRawLink("", &ipld.Link{Cid: odd.Cid(), Size: 0})
	fsn, _ := ft.FSNodeFromBytes(root.Data())
	fsn.AddBlockSize(8)
	b, _ := fsn.GetBytes()
	root.SetData(b)
	dag.Add(ctx, root)

	want := []byte("AAAABBCCCddleaf with dataeeeFodd leaf")
	g := newCountingGetter(dag)
	r, err := NewReaderAt(ctx, dag, root, g.get, ReaderAtOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.Size())))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
	checkRandomReads(t, r, want, 500, rand.New(rand.NewPCG(1, 1)))
}

// A dag-pb node that looked like a leaf (by its Tsize) but has links, or
// children whose sizes are not what their parent says: errors, never
// wrong bytes.
func TestReaderAtInconsistentDAG(t *testing.T) {
	ctx := context.Background()
	data := randBytes(3, 5000)
	p := Profile{CIDVersion: 1, ChunkSize: 1000, FileDAGWidth: 2}
	nd, dag := importBytes(t, data, p) // root -> inner nodes -> raw leaves
	orig := nd.(*mdag.ProtoNode)
	fsn, _ := ft.FSNodeFromBytes(orig.Data())
	if got := fsn.BlockSizes(); len(got) != 2 || got[0] != 4000 || got[1] != 1000 {
		t.Fatalf("block sizes %v, want [4000 1000]", got)
	}
	// The first child (an inner node of 4000 bytes) linked with a Tsize
	// that looks like a leaf's.
	root := orig.Copy().(*mdag.ProtoNode)
	links := root.Links()
	lied := *links[0]
	lied.Size = 4000 + 10
	links[0] = &lied
	root.SetLinks(links)
	g := newCountingGetter(dag)
	r, err := NewReaderAt(ctx, dag, root, g.get, ReaderAtOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.ReadAt(make([]byte, 100), 10); !errors.Is(err, ErrBadFileDAG) || n != 0 {
		t.Errorf("inner node taken for a leaf: %d, %v", n, err)
	}
	buf := make([]byte, 100)
	if n, err := r.ReadAt(buf, 4500); err != nil || !bytes.Equal(buf[:n], data[4500:4600]) {
		t.Errorf("read elsewhere: %d, %v", n, err)
	}

	// Block sizes that are not what the children hold, or do not add up
	// to the filesize.
	for _, c := range []struct {
		sizes    []uint64
		filesize uint64
	}{{[]uint64{3999, 1000}, 4999}, {[]uint64{4000, 1000}, 5001}, {[]uint64{4000}, 4000}} {
		f := ft.NewFSNode(ft.TFile)
		for _, s := range c.sizes {
			f.AddBlockSize(s)
		}
		f.UpdateFilesize(int64(c.filesize) - int64(f.FileSize()))
		b, _ := f.GetBytes()
		root := orig.Copy().(*mdag.ProtoNode)
		root.SetData(b)
		if _, err := NewReaderAt(ctx, dag, root, g.get, ReaderAtOptions{}); !errors.Is(err, ErrBadFileDAG) {
			t.Errorf("block sizes %v, filesize %d: %v", c.sizes, c.filesize, err)
		}
	}

	// A leaf whose length is not its parent's block size.
	short := mdag.NewRawNode([]byte("abc"))
	dag.Add(ctx, short)
	f := ft.NewFSNode(ft.TFile)
	f.AddBlockSize(4)
	b, _ := f.GetBytes()
	bad := mdag.NodeWithData(b)
	bad.AddNodeLink("", short)
	r2, err := NewReaderAt(ctx, dag, bad, g.get, ReaderAtOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if n, err := r2.ReadAt(make([]byte, 4), 0); !errors.Is(err, ErrBadFileDAG) || n != 0 {
		t.Errorf("short leaf: %d, %v", n, err)
	}

	// A directory is not a file.
	_, _, blks, _ := BuildDir(generatedLinks("x", "y", 3), DefaultProfile)
	if _, err := NewReaderAt(ctx, dag, blks[0].(ipld.Node), g.get, ReaderAtOptions{}); !errors.Is(err, ErrNotAFile) {
		t.Errorf("directory: %v", err)
	}
}

// A random read fetches exactly the leaves it touches, in one go.
func TestReaderAtFetchesOnlyTouchedLeaves(t *testing.T) {
	data := randBytes(5, 3<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 64 << 10, FileDAGWidth: 174, RawLeaves: true}
	r, g := openFile(t, data, p, ReaderAtOptions{})
	leaves := fileLeaves(r)
	// Leaves 10 to 14, from the middle of 10 to the middle of 14.
	off := leaves[10].off + 100
	buf := make([]byte, leaves[14].off+100-off)
	if n, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
		t.Fatalf("read: %d, %v", n, err)
	}
	if g.total() != 5 {
		t.Errorf("%d fetches, want 5", g.total())
	}
	for i := 10; i <= 14; i++ {
		if g.count(leaves[i].cid) != 1 {
			t.Errorf("leaf %d fetched %d times", i, g.count(leaves[i].cid))
		}
	}
	// Again: from the cache.
	r.ReadAt(buf, off)
	if g.total() != 5 {
		t.Errorf("%d fetches after a cached read, want 5", g.total())
	}
}

// A read spanning many leaves fetches up to Parallel at once.
func TestReaderAtParallel(t *testing.T) {
	data := randBytes(6, 1<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 16 << 10, FileDAGWidth: 174, RawLeaves: true}
	for _, parallel := range []int{1, 4} {
		r, g := openFile(t, data, p, ReaderAtOptions{Parallel: parallel})
		var cur, peak atomic.Int32
		g.wait = func(ctx context.Context, c cid.Cid) error {
			n := cur.Add(1)
			defer cur.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			// With Parallel > 1, hold each fetch until a second one runs.
			for deadline := time.Now().Add(5 * time.Second); parallel > 1 && peak.Load() < 2 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			return nil
		}
		buf := make([]byte, 40*(16<<10))
		if n, err := r.ReadAt(buf, 10<<10); err != nil || !bytes.Equal(buf, data[10<<10:10<<10+n]) {
			t.Fatalf("read: %d, %v", n, err)
		}
		if int(peak.Load()) > parallel {
			t.Errorf("Parallel %d: %d fetches at once", parallel, peak.Load())
		}
		if parallel > 1 && peak.Load() < 2 {
			t.Errorf("Parallel %d: fetched one at a time", parallel)
		}
	}
}

// Sequential reads make the reader fetch the next leaves in the
// background, the window growing from 2; a random read does not.
func TestReaderAtPrefetch(t *testing.T) {
	data := randBytes(8, 4<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 64 << 10, FileDAGWidth: 174, RawLeaves: true}
	r, g := openFile(t, data, p, ReaderAtOptions{Prefetch: 8})
	leaves := fileLeaves(r)
	g.seen = make(chan cid.Cid, 1000)
	leafSize := leaves[0].size
	buf := make([]byte, leafSize/2)

	// A read at offset 0 starts a streak: leaves 1 and 2 come ahead.
	r.ReadAt(buf, 0)
	waitFetch(t, g, leaves[2].cid)
	if g.count(leaves[3].cid) != 0 {
		t.Errorf("window of 2 fetched leaf 3")
	}
	// Read on: the window grows to 4, then 8.
	for off := int64(len(buf)); off < 3*leafSize; off += int64(len(buf)) {
		if n, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("read at %d: %d, %v", off, n, err)
		}
	}
	// Leaves 3 to 10 come ahead.
	for i := 3; i <= 10; i++ {
		waitFetch(t, g, leaves[i].cid)
	}
	for i := 0; i <= 10; i++ {
		if g.count(leaves[i].cid) != 1 {
			t.Errorf("leaf %d fetched %d times", i, g.count(leaves[i].cid))
		}
	}
	if g.count(leaves[11].cid) != 0 {
		t.Errorf("prefetched beyond the window of 8")
	}

	// A random read far away: only its own leaf.
	before := g.total()
	r.ReadAt(buf, leaves[40].off+10)
	if got := g.total() - before; got != 1 {
		t.Errorf("random read: %d fetches, want 1", got)
	}
}

// waitFetch waits until the getter has been asked for c.
func waitFetch(t *testing.T, g *countingGetter, c cid.Cid) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for g.count(c) == 0 {
		select {
		case <-g.seen:
		case <-deadline:
			t.Fatalf("leaf %s never fetched", c)
		}
	}
}

// Two sequential reads arriving out of order (the kernel issues them
// concurrently) keep the streak.
func TestReaderAtOutOfOrderSequential(t *testing.T) {
	data := randBytes(9, 4<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 64 << 10, FileDAGWidth: 174, RawLeaves: true}
	r, g := openFile(t, data, p, ReaderAtOptions{})
	leaves := fileLeaves(r)
	g.seen = make(chan cid.Cid, 1000)
	rd := 128 << 10 // two leaves per read
	buf := make([]byte, rd)
	for k := 0; k < 8; k += 2 {
		// read k+1 first, then k
		for _, j := range []int{k + 1, k} {
			off := int64(j * rd)
			if n, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Fatalf("read at %d: %d, %v", off, n, err)
			}
		}
	}
	// 8 reads of two leaves: 16 leaves read; the window (8) runs ahead.
	waitFetch(t, g, leaves[16+4].cid)
	r.mu.Lock()
	streak := r.streak
	r.mu.Unlock()
	if streak < 3 { // the later read of each pair moves the streak
		t.Errorf("streak %d after out-of-order sequential reads", streak)
	}
}

// Concurrent readers of one leaf share one fetch.
func TestReaderAtSingleflight(t *testing.T) {
	data := randBytes(10, 1<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 256 << 10, FileDAGWidth: 174, RawLeaves: true}
	r, g := openFile(t, data, p, ReaderAtOptions{})
	leaves := fileLeaves(r)
	gate := make(chan struct{})
	g.wait = func(ctx context.Context, c cid.Cid) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.seen = make(chan cid.Cid, 100)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			off := leaves[2].off + int64(i*1000)
			buf := make([]byte, 500)
			if n, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Errorf("read at %d: %d, %v", off, n, err)
			}
		})
	}
	waitFetch(t, g, leaves[2].cid)
	time.Sleep(20 * time.Millisecond) // let the other readers join
	close(gate)
	wg.Wait()
	if n := g.count(leaves[2].cid); n != 1 {
		t.Errorf("leaf fetched %d times by 8 concurrent readers", n)
	}
}

// A leaf that cannot be had fails the read with the getter's error; the
// failure is not remembered; a failed prefetch is retried by the read.
func TestReaderAtLeafErrors(t *testing.T) {
	data := randBytes(11, 2<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 64 << 10, FileDAGWidth: 174, RawLeaves: true}
	errGone := errors.New("all holders down")
	r, g := openFile(t, data, p, ReaderAtOptions{})
	leaves := fileLeaves(r)
	var broken atomic.Bool
	broken.Store(true)
	g.fail = func(c cid.Cid, n int) error {
		if c == leaves[5].cid && broken.Load() {
			return errGone
		}
		return nil
	}
	off := leaves[3].off + 7
	buf := make([]byte, leaves[7].off-off)
	n, err := r.ReadAt(buf, off)
	if err != errGone {
		t.Fatalf("err %v, want the getter's", err)
	}
	if want := int(leaves[5].off - off); n != want || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
		t.Errorf("returned %d bytes, want the %d before the failed leaf", n, want)
	}
	broken.Store(false)
	if n, err := r.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
		t.Errorf("after recovery: %d, %v", n, err)
	}

	// A prefetch of leaf 2 fails; the read of leaf 2 fetches it again.
	r2, g2 := openFile(t, data, p, ReaderAtOptions{})
	g2.seen = make(chan cid.Cid, 100)
	g2.fail = func(c cid.Cid, n int) error {
		if c == leaves[2].cid && n == 1 {
			return errGone
		}
		return nil
	}
	buf = make([]byte, leaves[0].size)
	r2.ReadAt(buf, 0) // prefetches 1 and 2
	waitFetch(t, g2, leaves[2].cid)
	for i := 1; i <= 2; i++ {
		off := leaves[i].off
		if n, err := r2.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("read of leaf %d: %d, %v", i, n, err)
		}
	}
	if n := g2.count(leaves[2].cid); n != 2 {
		t.Errorf("leaf 2 fetched %d times, want 2 (a failed prefetch, a retry)", n)
	}
}

// The cache holds at most CacheBytes, and prefetching fits in it.
func TestReaderAtCacheBound(t *testing.T) {
	data := randBytes(12, 4<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 64 << 10, FileDAGWidth: 174, RawLeaves: true}
	r, _ := openFile(t, data, p, ReaderAtOptions{CacheBytes: 256 << 10, Prefetch: 16})
	if r.maxWin != 2 {
		t.Errorf("prefetch window %d with room for 4 leaves, want 2", r.maxWin)
	}
	checkRandomReads(t, r, data, 300, rand.New(rand.NewPCG(3, 3)))
	if _, err := io.ReadAll(io.NewSectionReader(r, 0, int64(len(data)))); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	cached := r.cached
	r.mu.Unlock()
	if cached > 256<<10 {
		t.Errorf("%d bytes cached, limit %d", cached, 256<<10)
	}
}

// Many goroutines reading at once, some sequentially, some at random,
// and a Close while they run (run with -race).
func TestReaderAtConcurrent(t *testing.T) {
	data := randBytes(13, 3<<20+5)
	for _, p := range []Profile{
		{Name: "raw", CIDVersion: 1, ChunkSize: 32 << 10, FileDAGWidth: 174, RawLeaves: true},
		{Name: "v0", CIDVersion: 0, ChunkSize: 32 << 10, FileDAGWidth: 174},
	} {
		t.Run(p.Name, func(t *testing.T) {
			r, _ := openFile(t, data, p, ReaderAtOptions{CacheBytes: 512 << 10, Parallel: 3})
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Go(func() {
					if w < 2 {
						got, err := io.ReadAll(io.NewSectionReader(r, 0, int64(len(data))))
						if err != nil || !bytes.Equal(got, data) {
							t.Errorf("sequential reader %d: %v", w, err)
						}
						return
					}
					if err := randomReads(r, data, 200, rand.New(rand.NewPCG(uint64(w), 4))); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()

			// Close while reading: reads fail or succeed, never panic or
			// give wrong bytes; Close waits for the prefetches.
			for w := range 4 {
				wg.Go(func() {
					buf := make([]byte, 100<<10)
					for off := int64(w * 1000); off < int64(len(data)); off += int64(len(buf)) {
						n, err := r.ReadAt(buf, off)
						if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
							t.Errorf("wrong bytes at %d", off)
						}
						if err != nil && err != io.EOF {
							return
						}
					}
				})
			}
			time.Sleep(time.Millisecond)
			r.Close()
			wg.Wait()
			if _, err := r.ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("read after Close: %v", err)
			}
		})
	}
}

// Close cancels a prefetch stuck in the getter.
func TestReaderAtCloseCancelsPrefetch(t *testing.T) {
	data := randBytes(14, 1<<20)
	p := Profile{CIDVersion: 1, ChunkSize: 64 << 10, FileDAGWidth: 174, RawLeaves: true}
	r, g := openFile(t, data, p, ReaderAtOptions{})
	leaves := fileLeaves(r)
	g.seen = make(chan cid.Cid, 100)
	g.wait = func(ctx context.Context, c cid.Cid) error {
		if c == leaves[0].cid {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
	r.ReadAt(make([]byte, 10), 0)
	waitFetch(t, g, leaves[1].cid)
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

// The walk works on a DAG that hands out plain blocks (not ProtoNodes),
// as fungi's manifests do.
func TestReaderAtDecodesBlocks(t *testing.T) {
	ctx := context.Background()
	data := randBytes(15, 300<<10)
	nd, dag := importBytes(t, data, Profile{CIDVersion: 0, ChunkSize: 10 << 10, FileDAGWidth: 5})
	plain := NewMemDAG(false)
	for c, n := range dag.nodes {
		h, _ := mh.Sum(n.RawData(), mh.SHA2_256, -1)
		if !cid.NewCidV0(h).Equals(c) {
			t.Fatal("not a CIDv0 DAG")
		}
		blk, _ := blocks.NewBlockWithCid(n.RawData(), c)
		plain.Add(ctx, &mdag.RawNode{Block: blk})
	}
	g := newCountingGetter(plain)
	r, err := NewReaderAt(ctx, plain, nd, g.get, ReaderAtOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkRandomReads(t, r, data, 200, rand.New(rand.NewPCG(5, 5)))
}

func BenchmarkReaderAtSequential(b *testing.B) {
	data := content("readerat-bench", 64<<20)
	nd, dag := importBytes(b, data, DefaultProfile)
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		n, err := dag.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		return n.RawData(), nil
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := NewReaderAt(context.Background(), dag, nd, get, ReaderAtOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
			if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		r.Close()
	}
}
