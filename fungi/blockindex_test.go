package fungi

import (
	"bytes"
	"context"
	"io"
	"testing"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

func TestBlockIndex(t *testing.T) {
	place, _ := pool(6)
	c := Coding{K: 4, N: 6}
	a := addBytes(t, randBytes(1, 3*1<<20+5), c, place)
	// b shares a's first MiB: its first leaf is a's
	b := addBytes(t, append(randBytes(1, 3*1<<20+5)[:1<<20], randBytes(2, 1<<20)...), c, place)
	x := NewBlockIndex()
	for _, m := range []*Manifest{a, b} {
		if err := x.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	la, lb := leafCIDs(t, a), leafCIDs(t, b)
	if !la[0].Equals(lb[0]) {
		t.Fatal("the two files do not share their first leaf")
	}
	if bi, ok := x.Lookup(a.Root); !ok || !bi.Inline || !bi.Root.Equals(a.Root) || bi.Size != len(a.Nodes[a.Root].RawData()) {
		t.Fatalf("root of a: %+v %v", bi, ok)
	}
	if bi, ok := x.Lookup(la[1]); !ok || bi.Inline || bi.Size != 1<<20 || !bi.Root.Equals(a.Root) {
		t.Fatalf("a leaf of a: %+v %v", bi, ok)
	}
	if bi, ok := x.Lookup(la[3]); !ok || bi.Size != 5 {
		t.Fatalf("a's last leaf (5 bytes): %+v %v", bi, ok)
	}
	// a shared leaf outlives the object it was first indexed for
	x.Remove(a.Root)
	if _, ok := x.Lookup(la[1]); ok {
		t.Fatal("a's own leaf still indexed after a was removed")
	}
	if bi, ok := x.Lookup(la[0]); !ok || !bi.Root.Equals(b.Root) {
		t.Fatalf("the shared leaf after a was removed: %+v %v", bi, ok)
	}
	if x.Has(a.Root) || !x.Has(b.Root) || len(x.Roots()) != 1 {
		t.Fatalf("roots: %v", x.Roots())
	}
	x.Remove(b.Root)
	if x.Len() != 0 {
		t.Fatalf("%d blocks left after removing everything", x.Len())
	}
}

func TestLeavesInRange(t *testing.T) {
	place, _ := pool(6)
	c := Coding{K: 4, N: 6}
	data := randBytes(3, 5*1<<20+100)
	m := addBytes(t, data, c, place)
	leaves := leafCIDs(t, m)
	codec, _ := NewCodec(testSecret, c)
	dag := NewReader(codec, c, place, 0).DAG(m)
	root, err := dag.Get(context.Background(), m.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to int64
		want     []int // leaf numbers
	}{
		{0, 9, []int{0}},
		{1<<20 - 1, 1 << 20, []int{0, 1}},
		{2<<20 + 10, 2<<20 + 20, []int{2}},
		{5 << 20, 5<<20 + 99, []int{5}},
		{0, 5<<20 + 99, []int{0, 1, 2, 3, 4, 5}},
	} {
		got, err := LeavesInRange(context.Background(), dag, root, tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		want := map[cid.Cid]bool{}
		for _, i := range tc.want {
			want[leaves[i]] = true
		}
		if len(got) != len(want) {
			t.Fatalf("%d-%d: %d leaves, want %v", tc.from, tc.to, len(got), tc.want)
		}
		for l := range want {
			if !got[l] {
				t.Fatalf("%d-%d: leaf %s missing", tc.from, tc.to, l)
			}
		}
		// a reader over OnlyLeaves reads the range, and asks for nothing else
		counted := &countingDAG{DAGService: OnlyLeaves(dag, got)}
		rd, err := uio.NewDagReader(context.Background(), root, counted)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Seek(tc.from, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tc.to-tc.from+1)
		if _, err := io.ReadFull(rd, buf); err != nil {
			t.Fatalf("%d-%d: %v", tc.from, tc.to, err)
		}
		if !bytes.Equal(buf, data[tc.from:tc.to+1]) {
			t.Fatalf("%d-%d: wrong bytes", tc.from, tc.to)
		}
		for l := range counted.got {
			if l.Prefix().Codec == cid.Raw && !got[l] {
				t.Fatalf("%d-%d: fetched leaf %s outside the range", tc.from, tc.to, l)
			}
		}
	}
}

// countingDAG notes every node it delivers.
type countingDAG struct {
	ipld.DAGService
	got map[cid.Cid]bool
}

func (d *countingDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	go func() {
		defer close(out)
		for o := range d.DAGService.GetMany(ctx, cs) {
			if o.Node != nil {
				if d.got == nil {
					d.got = map[cid.Cid]bool{}
				}
				d.got[o.Node.Cid()] = true
			}
			out <- o
		}
	}()
	return out
}

func (d *countingDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	nd, err := d.DAGService.Get(ctx, c)
	if err == nil {
		if d.got == nil {
			d.got = map[cid.Cid]bool{}
		}
		d.got[c] = true
	}
	return nd, err
}
