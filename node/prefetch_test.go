package node

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The leaf order of a file is its content order, and reading its first
// leaf through GetBlockAhead warms the next ones.
func TestPrefetchLeafOrder(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	data := make([]byte, 24<<20+5000) // its last leaf too big to be inline
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, data, 0o644)
	res, err := r.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := ParseCID(res.Root)
	s := r.blockSource()
	o, ok := s.objectOf(ctx, root)
	if !ok {
		t.Fatal("no object for the root")
	}
	lo := newLeafOrder(o.m)
	if uint64(len(lo.leaves)) != o.m.Leaves || len(lo.leaves) < prefetchLeaves+2 {
		t.Fatalf("%d leaves in order, manifest says %d", len(lo.leaves), o.m.Leaves)
	}
	var got bytes.Buffer
	for i, c := range lo.leaves {
		if lo.pos[c] != i {
			t.Fatalf("leaf %d at position %d", i, lo.pos[c])
		}
		blk, err := r.GetBlockAhead(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(blk.RawData())
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("the leaves in order are not the file")
	}
	// a new walk from the start prefetches again (the mark was at the end)
	lo2 := s.prefetch().order(o)
	if hw := lo2.ahead.Load(); hw != int64(len(lo.leaves)-1) {
		t.Fatalf("high-water mark %d after a full walk of %d leaves", hw, len(lo.leaves))
	}
	if _, err := r.GetBlockAhead(ctx, lo.leaves[0]); err != nil {
		t.Fatal(err)
	}
	if hw := lo2.ahead.Load(); hw != prefetchLeaves {
		t.Fatalf("high-water mark %d after a new walk's first leaf, want %d", hw, prefetchLeaves)
	}
}
