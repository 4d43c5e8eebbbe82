package repair

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// fakeNode is a cluster in memory: MemStores as holders, the replicated
// state as plain fields. It stands in for RAFT and libp2p, which the
// daemon tests cover; the repair logic here runs for real.
type fakeNode struct {
	t      *testing.T
	mu     sync.Mutex
	ids    []string
	stores map[string]*fungi.MemStore
	down   map[string]time.Duration // unheard for
	objs   []fakeObj
	epochs []Epoch
	dmg    map[string]Damage
	ver    uint64
	codec  *fungi.Codec
	local  string
	busy   bool
	writes map[string]int // fragment puts per holder+key
}

type fakeObj struct {
	m     *fungi.Manifest
	epoch uint64
	data  []byte
}

func newFake(t *testing.T, n int) *fakeNode {
	codec, err := fungi.NewCodec(bytes.Repeat([]byte{7}, 32), fungi.DefaultCoding())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{t: t, stores: map[string]*fungi.MemStore{}, down: map[string]time.Duration{}, dmg: map[string]Damage{}, codec: codec, writes: map[string]int{}}
	for i := range n {
		id := fmt.Sprintf("node%02d", i)
		f.ids = append(f.ids, id)
		f.stores[id] = fungi.NewMemStore()
	}
	return f
}

// add writes an object of size bytes over every node.
func (f *fakeNode) add(size int) cid.Cid {
	data := make([]byte, size)
	rand.Read(data)
	var sp fungi.Spread
	for _, id := range f.ids {
		sp.Pool = append(sp.Pool, fungi.Target{ID: id, Store: f.stores[id]})
	}
	ctx := context.Background()
	w := fungi.NewWriter(ctx, f.codec, f.codec.Coding(), sp, 0)
	nd, err := fungi.ImportFile(ctx, bytes.NewReader(data), fungi.DefaultProfile, w)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := w.Finish(nd.Cid())
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.objs = append(f.objs, fakeObj{m: m, epoch: uint64(len(f.epochs)), data: data})
	f.ver++
	f.mu.Unlock()
	return m.Root
}

func (f *fakeNode) Self() string    { return f.local }
func (f *fakeNode) Leader() bool    { return true }
func (f *fakeNode) Version() uint64 { f.mu.Lock(); defer f.mu.Unlock(); return f.ver }
func (f *fakeNode) Busy() bool      { f.mu.Lock(); defer f.mu.Unlock(); return f.busy }

func (f *fakeNode) moves(epoch uint64) []fungi.Move {
	var out []fungi.Move
	for _, e := range f.epochs {
		if e.Seq > epoch {
			out = append(out, e.Move)
		}
	}
	return out
}

func (f *fakeNode) Objects(context.Context) ([]fungi.RepairObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fungi.RepairObject
	for _, o := range f.objs {
		out = append(out, fungi.RepairObject{Root: o.m.Root, Manifest: o.m, Layout: fungi.LayoutOf(o.m, f.moves(o.epoch), nil)})
	}
	return out, nil
}

func (f *fakeNode) Members(context.Context) ([]Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Member
	for _, id := range f.ids {
		d, isDown := f.down[id]
		out = append(out, Member{ID: id, Storing: true, Free: 100 << 30, Up: !isDown, Contact: time.Now().Add(-d)})
	}
	return out, nil
}

func (f *fakeNode) Epochs() []Epoch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.epochs)
}

func (f *fakeNode) Damages() []Damage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Damage
	for _, d := range f.dmg {
		out = append(out, d)
	}
	return out
}

type downStore struct{ id string }

var errDown = errors.New("down")

func (d downStore) PutFragment(context.Context, []byte, []byte) error   { return errDown }
func (d downStore) GetFragment(context.Context, []byte) ([]byte, error) { return nil, errDown }
func (d downStore) HasFragment(context.Context, []byte) (bool, error)   { return false, errDown }

type countingStore struct {
	*fungi.MemStore
	f  *fakeNode
	id string
}

func (c countingStore) PutFragment(ctx context.Context, k, v []byte) error {
	c.f.mu.Lock()
	c.f.writes[c.id+string(k)]++
	c.f.mu.Unlock()
	return c.MemStore.PutFragment(ctx, k, v)
}

func (f *fakeNode) Store(id string) fungi.FragmentStore {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, d := f.down[id]; d {
		return downStore{id}
	}
	return countingStore{f.stores[id], f, id}
}

func (f *fakeNode) Codec(fungi.Coding) (*fungi.Codec, error) { return f.codec, nil }

func (f *fakeNode) Begin(_ context.Context, reason string, lost []string, pool []fungi.Candidate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epochs = append(f.epochs, Epoch{Move: fungi.Move{Seq: uint64(len(f.epochs) + 1), Lost: lost, Pool: pool}, Reason: reason})
	f.ver++
	return nil
}

func (f *fakeNode) End(_ context.Context, seq uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.epochs {
		if f.epochs[i].Seq <= seq {
			f.epochs[i].Done = true
		}
	}
	f.ver++
	return nil
}

func (f *fakeNode) Report(_ context.Context, ds []Damage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		f.dmg[d.Holder+"\x00"+string(d.Key)] = d
	}
	f.ver++
	return nil
}

func (f *fakeNode) Clear(_ context.Context, ds []Damage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		delete(f.dmg, d.Holder+"\x00"+string(d.Key))
	}
	f.ver++
	return nil
}

func (f *fakeNode) Local() Local {
	if f.local == "" {
		return nil
	}
	return memLocal{f.stores[f.local]}
}

// memLocal is a MemStore as a scrubber's Local.
type memLocal struct{ s *fungi.MemStore }

func (m memLocal) Scan(cursor []byte, n int) ([]Item, []byte, error) {
	keys := m.s.Keys()
	i := 0
	if cursor != nil {
		i, _ = slices.BinarySearch(keys, string(cursor))
		i++
	}
	var out []Item
	for ; i < len(keys) && len(out) < n; i++ {
		v, _ := m.s.GetFragment(context.Background(), []byte(keys[i]))
		out = append(out, Item{Key: []byte(keys[i]), Size: len(v)})
	}
	if len(out) == 0 {
		return nil, nil, nil
	}
	return out, out[len(out)-1].Key, nil
}
func (m memLocal) Get(ctx context.Context, k []byte) ([]byte, error) { return m.s.GetFragment(ctx, k) }
func (m memLocal) Has(ctx context.Context, k []byte) (bool, error)   { return m.s.HasFragment(ctx, k) }
func (m memLocal) Delete(ctx context.Context, k []byte) error        { return m.s.DeleteFragment(ctx, k) }

func testService(f *fakeNode, grace time.Duration) *Service {
	return leading(New(f, Config{Grace: grace, Interval: 10 * time.Millisecond, ScrubRate: 0}, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// leading makes s a leader of long standing (a new leader lets the grace
// run from when it took over).
func leading(s *Service) *Service {
	s.leadSince = time.Now().Add(-24 * time.Hour)
	return s
}

// readAll reads every object back through its current layout with only
// the live nodes and checks the bytes.
func (f *fakeNode) readAll(t *testing.T) {
	t.Helper()
	objs, _ := f.Objects(context.Background())
	for i, o := range objs {
		o.Layout.Store = f.Store
		rd := fungi.NewReader(f.codec, o.Manifest.Coding, o.Layout, 0)
		var buf bytes.Buffer
		leaves, _ := o.Manifest.AllLeaves()
		for _, l := range leaves {
			if l.Inline { // small: in the manifest, no fragments
				buf.Write(o.Manifest.Nodes[l.CID].RawData())
				continue
			}
			b, err := rd.Block(context.Background(), l.CID)
			if err != nil {
				t.Fatalf("object %d: %v", i, err)
			}
			buf.Write(b)
		}
		if !bytes.Equal(buf.Bytes(), f.objs[i].data) {
			t.Fatalf("object %d: wrong bytes", i)
		}
	}
}

// status asks the service for its view now.
func look(t *testing.T, s *Service) *view {
	t.Helper()
	v, err := s.look(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The scenario in memory: 24 nodes at 16/4, lose 4, repair to 20
// fragments on 20 distinct live nodes, lose 4 that received repaired
// fragments, and every object still reads; without the repair the second
// loss is fatal for some block.
func TestLoseRepairLoseAgain(t *testing.T) {
	f := newFake(t, 24)
	for range 3 {
		f.add(3<<20 + 12345)
	}
	s := testService(f, time.Minute)
	ctx := context.Background()
	first := []string{"node01", "node05", "node09", "node13"}
	for _, id := range first {
		f.down[id] = 10 * time.Second // within the grace
	}
	if err := s.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.epochs) != 0 || len(f.writes) != 0 {
		t.Fatalf("within the grace: %d epochs, %d writes", len(f.epochs), len(f.writes))
	}
	// the console's list: members down count their fragments away
	objs, err := s.Objects(ctx)
	if err != nil || len(objs) != 3 {
		t.Fatalf("objects: %d, %v", len(objs), err)
	}
	for _, o := range objs {
		if o.Health == fungi.Full || o.Health == fungi.Lost || o.Tolerance >= 4 || o.Holders < 20 || o.Holders > 24 || o.Blocks != 4 || o.Size != 3<<20+12345 || o.Coding.N != 20 {
			t.Fatalf("object within the grace: %+v", o)
		}
	}
	for _, id := range first {
		f.down[id] = 2 * time.Minute
	}
	for range 3 {
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.epochs) != 1 || !f.epochs[0].Done || !slices.Equal(f.epochs[0].Lost, first) {
		t.Fatalf("epochs: %+v", f.epochs)
	}
	v := look(t, s)
	if v.plan.Objects.Full != 3 || len(v.plan.Blocks) != 0 {
		t.Fatalf("after repair: objects %+v, %d blocks short", v.plan.Objects, len(v.plan.Blocks))
	}
	for k, n := range f.writes {
		if n != 1 {
			t.Fatalf("fragment %x written %d times", k, n)
		}
	}
	// second loss among the nodes that received fragments
	received := map[string]bool{}
	for _, o := range v.objs {
		leaves, _ := o.Manifest.LeafCIDs()
		for _, l := range leaves {
			orig := (fungi.Layout{Pool: o.Manifest.Pool}).Current(l, 20)
			for i, h := range o.Layout.Current(l, 20) {
				if h != orig[i] {
					received[h] = true
				}
			}
		}
	}
	second := sortedKeys(received)[:4]
	// without repair, the second loss with the first would lose a block
	fatal := false
	for _, o := range v.objs {
		leaves, _ := o.Manifest.LeafCIDs()
		for _, l := range leaves {
			alive := 0
			for _, h := range (fungi.Layout{Pool: o.Manifest.Pool}).Current(l, 20) {
				if !slices.Contains(first, h) && !slices.Contains(second, h) {
					alive++
				}
			}
			fatal = fatal || alive < 16
		}
	}
	if !fatal {
		t.Fatal("the second loss would not have been fatal without repair: pick other nodes")
	}
	for _, id := range second {
		f.down[id] = time.Second
	}
	f.readAll(t)
}

// A move committed and then the leader dies mid-pass: the next pass
// finishes it and writes no fragment twice.
func TestRepairResumesWithoutRewriting(t *testing.T) {
	f := newFake(t, 24)
	f.add(4 << 20)
	s := testService(f, time.Minute)
	for _, id := range []string{"node02", "node03", "node04", "node06"} {
		f.down[id] = time.Hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.tick(ctx); err != nil { // begins the epoch
		t.Fatal(err)
	}
	v := look(t, s)
	// the old leader repairs two blocks, then dies
	for _, b := range v.plan.Blocks[:2] {
		if _, _, _, err := s.repairBlock(ctx, v, &b, v.objs[0].Layout); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	written := len(f.writes)
	s2 := testService(f, time.Minute)
	if err := s2.tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.epochs[0].Done {
		t.Fatal("the new leader did not finish the epoch")
	}
	for k, n := range f.writes {
		if n != 1 {
			t.Fatalf("fragment %x written %d times", k, n)
		}
	}
	if len(f.writes) <= written {
		t.Fatal("nothing left for the new leader")
	}
	f.readAll(t)
}

// More than a quarter of the nodes vanishing at once is a partition:
// nothing moves, and the status says why.
func TestPartitionHoldsBack(t *testing.T) {
	f := newFake(t, 20)
	f.add(1 << 20)
	s := testService(f, time.Minute)
	for _, id := range f.ids[:6] {
		f.down[id] = time.Hour
	}
	if err := s.tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.epochs) != 0 || len(f.writes) != 0 {
		t.Fatal("a partition started a repair")
	}
	if st := s.Status(); st.Partition == "" || st.Objects.Lost != 1 {
		t.Fatalf("status: %+v", st)
	}
}

// Bit rot: the scrubber finds every corrupted copy in one pass, deletes
// it and reports it; the repair rewrites it in place (no epoch).
func TestScrubFindsAndRepairRewrites(t *testing.T) {
	f := newFake(t, 20)
	f.add(2 << 20)
	f.local = "node07"
	s := leading(New(f, Config{Grace: time.Minute, ScrubRate: 1 << 30}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	st := f.stores["node07"]
	keys := st.Keys()
	for _, k := range keys[:1] {
		st.Mutate([]byte(k), func(v []byte) []byte { v[len(v)/2] ^= 1; return v })
	}
	st.DeleteFragment(context.Background(), []byte(keys[1]))
	res, err := s.Scrub(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.LastCorrupt != 1 || res.LastMissing != 1 || len(f.dmg) != 2 {
		t.Fatalf("scrub: %+v, %d reports", res, len(f.dmg))
	}
	if err := s.tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.dmg) != 0 || len(f.epochs) != 0 {
		t.Fatalf("after repair: %d reports, %d epochs", len(f.dmg), len(f.epochs))
	}
	res, _ = s.Scrub(context.Background())
	if res.LastCorrupt != 0 || res.LastMissing != 0 {
		t.Fatalf("second pass: %+v", res)
	}
}

// A holder that drops data is caught by audits, and after AuditStrikes
// rounds its fragments move elsewhere.
func TestAuditCatchesDroppedData(t *testing.T) {
	f := newFake(t, 24)
	f.add(3 << 20)
	s := leading(New(f, Config{Grace: time.Minute, AuditSample: 8, AuditStrikes: 2}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	liar := "node11"
	keys := f.stores[liar].Keys()
	for _, k := range keys {
		f.stores[liar].DeleteFragment(context.Background(), []byte(k))
	}
	ctx := context.Background()
	for range 2 {
		if err := s.Audit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !s.failedAudits()[liar] {
		t.Fatalf("audits: %+v", s.Status().Audits)
	}
	for range 3 {
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.epochs) != 1 || f.epochs[0].Reason != "audit" || !f.epochs[0].Done {
		t.Fatalf("epochs %+v", f.epochs)
	}
	v := look(t, s)
	if v.plan.Objects.Full != 1 {
		t.Fatalf("objects %+v", v.plan.Objects)
	}
}

// A requested repair of an unknown root fails; a dry run writes nothing.
func TestRepairRequests(t *testing.T) {
	f := newFake(t, 20)
	root := f.add(1 << 20)
	s := testService(f, time.Hour)
	f.down["node04"] = time.Second
	if _, err := s.Repair(context.Background(), []cid.Cid{f.codecCid()}, false, nil); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown root: %v", err)
	}
	rep, err := s.Repair(context.Background(), nil, true, nil)
	if err != nil || len(f.writes) != 0 || len(f.epochs) != 0 || rep.Fragments == 0 || !slices.Equal(rep.Moved, []string{"node04"}) {
		t.Fatalf("dry run: %+v %v, %d writes", rep, err, len(f.writes))
	}
	// too few live nodes for 20 distinct holders: repairs what it can
	rep, err = s.Repair(context.Background(), []cid.Cid{root}, false, nil)
	if err != nil || len(f.epochs) != 1 || rep.Repaired == 0 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if rep.Objects.Degraded != 1 {
		t.Fatalf("19 nodes for 20 fragments: %+v", rep)
	}
	f.readAll(t)
}

func (f *fakeNode) codecCid() cid.Cid {
	c, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	return c
}

// A leader that just took over lets the grace run from then: it has not
// heard from anyone yet, and a member silent to it may be fine.
func TestNewLeaderWaitsTheGrace(t *testing.T) {
	f := newFake(t, 20)
	f.add(1 << 20)
	s := New(f, Config{Grace: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.down["node03"] = time.Hour
	if err := s.tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.epochs) != 0 {
		t.Fatal("a new leader replaced a member before the grace ran out under it")
	}
	if st := s.Status(); !slices.Equal(st.Down, []string{"node03"}) || st.Stranded == 0 {
		t.Fatalf("status %+v", st)
	}
}

// Members that died together but cross the grace a moment apart are
// replaced in one epoch: a second one would move blocks twice.
func TestLossesTogetherOneEpoch(t *testing.T) {
	f := newFake(t, 24)
	f.add(8 << 20) // 8 blocks: every node holds some (a node of 24 misses one in 6)
	s := testService(f, time.Minute)
	f.down["node01"] = 61 * time.Second
	for _, id := range []string{"node02", "node03", "node04"} {
		f.down[id] = 55 * time.Second
	}
	f.down["node05"] = 5 * time.Second // down since just now: not with them
	if err := s.tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.epochs) != 1 || !slices.Equal(f.epochs[0].Lost, []string{"node01", "node02", "node03", "node04"}) {
		t.Fatalf("epochs %+v", f.epochs)
	}
}

// Small leaves kept in the manifest (issue 15) have no fragments: the
// scrubber and audits look for none, a loss repairs none of them, the
// console's list counts them as blocks, and an object all inline is full
// and can lose every holder but one.
func TestInlineBlocksNeedNoRepair(t *testing.T) {
	f := newFake(t, 24)
	small := f.add(100)
	empty := f.add(0)
	mixed := f.add(3<<20 + 100) // three leaves of 1 MiB and a 100-byte one
	f.local = "node07"
	s := leading(New(f, Config{Grace: time.Minute, ScrubRate: 1 << 30, AuditSample: 16}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx := context.Background()
	var inline []cid.Cid
	for _, o := range f.objs {
		all, err := o.m.AllLeaves()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range all {
			if l.Inline {
				inline = append(inline, l.CID)
			}
		}
	}
	if len(inline) != 3 {
		t.Fatalf("%d inline leaves, want 3", len(inline))
	}
	res, err := s.Scrub(ctx)
	if err != nil || res.LastMissing != 0 || res.LastCorrupt != 0 || len(f.dmg) != 0 {
		t.Fatalf("scrub: %+v %v, %d reports", res, err, len(f.dmg))
	}
	if err := s.Audit(ctx); err != nil || len(s.failedAudits()) != 0 {
		t.Fatalf("audit: %v, failing %v", err, s.failedAudits())
	}
	objs, err := s.Objects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o.Root {
		case small, empty:
			if o.Health != fungi.Full || o.Blocks != 1 || o.Holders != 0 || o.Tolerance != 23 {
				t.Fatalf("an object all inline: %+v", o)
			}
		case mixed:
			if o.Health != fungi.Full || o.Blocks != 4 || o.Holders < 20 || o.Holders > 24 || o.Tolerance != 4 {
				t.Fatalf("three dispersed leaves and an inline one: %+v", o)
			}
		}
	}
	lost := []string{"node01", "node05", "node09", "node13"}
	for _, id := range lost {
		f.down[id] = 2 * time.Minute
	}
	for range 3 {
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.epochs) != 1 || !f.epochs[0].Done || len(f.writes) == 0 {
		t.Fatalf("epochs %+v, %d writes", f.epochs, len(f.writes))
	}
	for _, l := range inline {
		for i := range f.codec.Coding().N {
			key := string(fungi.FragmentKey(l, f.codec.Coding(), i))
			for _, id := range f.ids {
				if f.writes[id+key] != 0 {
					t.Fatalf("repair wrote fragment %d of inline leaf %s on %s", i, l, id)
				}
			}
		}
	}
	v := look(t, s)
	if v.plan.Objects.Full != 3 || len(v.plan.Blocks) != 0 {
		t.Fatalf("after repair: objects %+v, %d blocks short", v.plan.Objects, len(v.plan.Blocks))
	}
	f.readAll(t)
}
