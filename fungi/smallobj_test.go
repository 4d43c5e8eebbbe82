package fungi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
)

// smallSizes are the sizes small objects are tested at (issue 15): empty,
// one byte, around the inline threshold, and files of several blocks
// whose last leaf is small (kept inline) or just too big to be.
func smallSizes() []struct {
	name string
	size int
} {
	const chunk = 1 << 20 // DefaultProfile's
	return []struct {
		name string
		size int
	}{
		{"0", 0}, {"1", 1}, {"threshold-1", InlineLeafMax - 1}, {"threshold", InlineLeafMax},
		{"threshold+1", InlineLeafMax + 1},
		{"2MiB+small-tail", 2*chunk + 100}, {"1MiB+tail-threshold+1", chunk + InlineLeafMax + 1},
	}
}

// fetchCounter counts the fragments asked of every holder of a pool.
type fetchCounter struct {
	FragmentStore
	n *atomic.Int64
}

func (s fetchCounter) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	s.n.Add(1)
	return s.FragmentStore.GetFragment(ctx, key)
}

// Small objects and small last leaves are kept in the manifest: they cost
// no fragment, read back without asking any holder, keep the CID an
// import without storage gives (the --only-hash path), survive the loss
// of N-K holders like the dispersed leaves beside them, and a manifest
// holding them encodes and decodes.
func TestSmallObjectsInline(t *testing.T) {
	for _, tc := range smallSizes() {
		t.Run(tc.name, func(t *testing.T) {
			place, stores := pool(20)
			data := randBytes(uint64(tc.size)+3, tc.size)
			m := addBytes(t, data, DefaultCoding(), place)

			// the CID of an import that stores nothing
			hashed, err := ImportFile(context.Background(), bytes.NewReader(data), DefaultProfile, NewMemDAG(true))
			if err != nil {
				t.Fatal(err)
			}
			if !hashed.Cid().Equals(m.Root) {
				t.Fatalf("root %s, an import without storage gives %s", m.Root, hashed.Cid())
			}

			all, err := m.AllLeaves()
			if err != nil {
				t.Fatal(err)
			}
			wantDispersed := 0
			var content int
			for _, l := range all {
				blk, inline := m.Nodes[l.CID]
				if l.Inline != inline {
					t.Fatalf("leaf %s: AllLeaves says inline %v, Nodes %v", l.CID, l.Inline, inline)
				}
				if inline {
					if n := len(blk.RawData()); n > InlineLeafMax {
						t.Fatalf("a leaf of %d bytes kept inline (max %d)", n, InlineLeafMax)
					}
					content += len(blk.RawData())
				} else {
					wantDispersed++
				}
			}
			leaves, err := m.LeafCIDs()
			if err != nil || len(leaves) != wantDispersed {
				t.Fatalf("LeafCIDs: %d leaves, want the %d dispersed (%v)", len(leaves), wantDispersed, err)
			}
			if tc.size <= InlineLeafMax && (len(all) != 1 || !all[0].Inline || wantDispersed != 0) {
				t.Fatalf("an object of %d bytes: leaves %+v, want one inline", tc.size, all)
			}
			if tc.size > InlineLeafMax && tc.size < 1<<20 && wantDispersed != 1 {
				t.Fatalf("an object of %d bytes is not dispersed: %+v", tc.size, all)
			}
			frags := 0
			for _, s := range stores {
				frags += s.Len()
			}
			if frags != wantDispersed*DefaultCoding().N || m.Leaves != uint64(len(all)) || m.Size != uint64(tc.size) {
				t.Fatalf("%d fragments stored for %d dispersed leaves; manifest: %d leaves, %d bytes", frags, wantDispersed, m.Leaves, m.Size)
			}

			// the manifest encodes and decodes with its inline leaves
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Manifest
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if len(back.Nodes) != len(m.Nodes) {
				t.Fatalf("decoded %d nodes of %d", len(back.Nodes), len(m.Nodes))
			}

			// read back, counting the fragments asked for
			var asked atomic.Int64
			counted := Spread{Pool: append([]Target(nil), place.Pool...)}
			for i := range counted.Pool {
				counted.Pool[i].Store = fetchCounter{counted.Pool[i].Store, &asked}
			}
			got, err := readAll(t, &back, counted)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d of %d bytes: %v", len(got), len(data), err)
			}
			if wantDispersed == 0 && asked.Load() != 0 {
				t.Fatalf("reading an inline object asked %d fragments", asked.Load())
			}
			if max := int64(wantDispersed * DefaultCoding().N); asked.Load() > max {
				t.Fatalf("%d fragments asked for %d dispersed leaves", asked.Load(), wantDispersed)
			}

			// N-K holders lost: every byte still reads
			lost := Spread{Pool: append([]Target(nil), place.Pool...)}
			for i := range DefaultCoding().N - DefaultCoding().K {
				lost.Pool[i].Store = unreachable{lost.Pool[i].ID}
			}
			got, err = readAll(t, &back, lost)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after losing %d holders: read %d of %d bytes: %v", DefaultCoding().N-DefaultCoding().K, len(got), len(data), err)
			}
			// and one more loses the dispersed leaves only
			lost.Pool[DefaultCoding().N-DefaultCoding().K].Store = unreachable{"one more"}
			_, err = readAll(t, &back, lost)
			if (err == nil) != (wantDispersed == 0) {
				t.Fatalf("after losing one holder too many, %d dispersed leaves: %v", wantDispersed, err)
			}
		})
	}
}

// A directory of small files: each is inline, a file that occurs twice
// is kept once, and a budget of inline bytes per add sends what comes
// past it to the fragment stores (the manifest is one raft entry).
func TestSmallFilesInlineBudget(t *testing.T) {
	dir := t.TempDir()
	var total int
	for i := range 20 {
		d := randBytes(uint64(i), 100+i)
		total += len(d) + 36
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), d, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "same"), randBytes(0, 100), 0o644) // as f00
	for _, budget := range []int{MaxAddInline, total / 2, 0} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			place, stores := pool(5)
			codec, _ := NewCodec(testSecret, DefaultCoding())
			w := NewWriter(context.Background(), codec, DefaultCoding(), place, 0)
			w.InlineBudget = budget
			root, err := ImportPath(context.Background(), dir, DefaultProfile, w, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := w.Finish(root)
			if err != nil {
				t.Fatal(err)
			}
			all, _ := m.AllLeaves()
			inline, inlineBytes := map[cid.Cid]bool{}, 0
			for _, l := range all {
				if l.Inline && !inline[l.CID] {
					inline[l.CID] = true
					inlineBytes += len(m.Nodes[l.CID].RawData()) + len(l.CID.Bytes())
				}
			}
			dispersed, _ := m.LeafCIDs()
			distinct := map[cid.Cid]bool{}
			for _, l := range dispersed {
				distinct[l] = true
			}
			frags := 0
			for _, s := range stores {
				frags += s.Len()
			}
			switch {
			case len(all) != 21 || len(inline)+len(distinct) != 20:
				t.Fatalf("%d leaves, %d inline and %d dispersed distinct; want 21 leaves, 20 distinct", len(all), len(inline), len(distinct))
			case inlineBytes > budget:
				t.Fatalf("%d inline bytes over a budget of %d", inlineBytes, budget)
			case budget == MaxAddInline && len(inline) != 20, budget == 0 && len(inline) != 0:
				t.Fatalf("budget %d: %d leaves inline", budget, len(inline))
			case frags != len(distinct)*DefaultCoding().N:
				t.Fatalf("%d fragments for %d dispersed leaves", frags, len(distinct))
			case len(w.Leaves()) != len(distinct):
				t.Fatalf("Leaves() names %d blocks, %d were dispersed", len(w.Leaves()), len(distinct))
			}
			for i := range 20 {
				f := filepath.Join(dir, fmt.Sprintf("f%02d", i))
				want, _ := os.ReadFile(f)
				c, _ := ImportFile(context.Background(), bytes.NewReader(want), DefaultProfile, NewMemDAG(true))
				got, err := readAll(t, &Manifest{Root: c.Cid(), Coding: m.Coding, Nodes: m.Nodes}, place)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: %v", f, err)
				}
			}
		})
	}
}

// A writer with InlineMax -1 disperses every leaf, as before the rule.
func TestInlineOff(t *testing.T) {
	place, stores := pool(4)
	codec, _ := NewCodec(testSecret, DefaultCoding())
	w := NewWriter(context.Background(), codec, DefaultCoding(), place, 0)
	w.InlineMax = -1
	nd, err := ImportFile(context.Background(), bytes.NewReader([]byte("hello\n")), DefaultProfile, w)
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish(nd.Cid())
	if err != nil {
		t.Fatal(err)
	}
	frags := 0
	for _, s := range stores {
		frags += s.Len()
	}
	if len(m.Nodes) != 0 || frags != DefaultCoding().N || m.Stored != uint64(DefaultCoding().N*116) {
		t.Fatalf("%d nodes, %d fragments, %d bytes stored", len(m.Nodes), frags, m.Stored)
	}
}

// Whatever a manifest holds, AllLeaves agrees with LeafCIDs (its
// dispersed leaves are exactly LeafCIDs', in order), and an inline leaf
// is a block of Nodes; sizes are listed for dispersed leaves only.
func FuzzManifestLeaves(f *testing.F) {
	place, _ := pool(3)
	for _, n := range []int{0, 1, InlineLeafMax, InlineLeafMax + 1, 1<<20 + 7} {
		b, _ := addBytes(f, randBytes(uint64(n), n), DefaultCoding(), place).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if m.UnmarshalBinary(b) != nil {
			return
		}
		all, err1 := m.AllLeaves()
		leaves, err2 := m.LeafCIDs()
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("AllLeaves: %v, LeafCIDs: %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		var dispersed []cid.Cid
		for _, l := range all {
			_, inNodes := m.Nodes[l.CID]
			if l.Inline != inNodes {
				t.Fatalf("leaf %s: inline %v, in Nodes %v", l.CID, l.Inline, inNodes)
			}
			if !l.Inline {
				dispersed = append(dispersed, l.CID)
			}
		}
		if len(dispersed) != len(leaves) {
			t.Fatalf("%d dispersed leaves, LeafCIDs %d", len(dispersed), len(leaves))
		}
		for i := range leaves {
			if !leaves[i].Equals(dispersed[i]) {
				t.Fatalf("leaf %d: %s, LeafCIDs %s", i, dispersed[i], leaves[i])
			}
		}
		if sizes, err := m.LeafSizes(); err == nil {
			for c := range sizes {
				if _, inline := m.Nodes[c]; inline {
					t.Fatalf("a size listed for inline block %s", c)
				}
			}
		}
	})
}
