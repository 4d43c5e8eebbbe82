package fungi

import (
	"maps"
	"slices"
	"sync"

	"github.com/ipfs/go-cid"
)

// BlockIndex maps every block of a set of objects to the objects that hold
// it and to where it lives: inline in the manifest (inner nodes) or
// dispersed as fragments (leaves). It answers "is this block here, how big
// is it, which manifest reads it" without fetching anything, as a block
// service asked for sizes and presence (the gateway, bitswap) must.
//
// Objects are added and removed by root; a block that several objects
// share stays indexed while any of them is. Safe for concurrent use.
type BlockIndex struct {
	mu     sync.RWMutex
	blocks map[cid.Cid]blockRefs
	roots  map[cid.Cid][]cid.Cid // root -> its distinct blocks
}

// BlockInfo says where one block lives.
type BlockInfo struct {
	// Root is an object that holds the block (the first indexed).
	Root cid.Cid
	// Size is the block's size in bytes, -1 if no manifest records it.
	Size int
	// Inline: the block's bytes are in the manifest (an inner node);
	// otherwise it is a leaf read from its fragments.
	Inline bool
}

type blockRefs struct {
	size   int
	inline bool
	roots  []cid.Cid
}

// NewBlockIndex returns an empty index.
func NewBlockIndex() *BlockIndex {
	return &BlockIndex{blocks: map[cid.Cid]blockRefs{}, roots: map[cid.Cid][]cid.Cid{}}
}

// Add indexes the blocks of m (again: adding a root twice replaces it).
func (x *BlockIndex) Add(m *Manifest) error {
	sizes, err := m.LeafSizes()
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(m.Root)
	own := make([]cid.Cid, 0, len(m.Nodes)+len(sizes))
	for c, b := range m.Nodes {
		x.ref(c, m.Root, len(b.RawData()), true)
		own = append(own, c)
	}
	for c, size := range sizes {
		if _, inline := m.Nodes[c]; inline {
			continue
		}
		x.ref(c, m.Root, int(size), false)
		own = append(own, c)
	}
	x.roots[m.Root] = own
	return nil
}

func (x *BlockIndex) ref(c, root cid.Cid, size int, inline bool) {
	r, ok := x.blocks[c]
	if !ok {
		r = blockRefs{size: size, inline: inline}
	}
	if r.size < 0 {
		r.size = size
	}
	// an inline copy is cheaper to read than fragments: prefer it
	if inline && !r.inline {
		r.inline, r.size = true, size
		r.roots = append([]cid.Cid{root}, r.roots...)
	} else {
		r.roots = append(r.roots, root)
	}
	x.blocks[c] = r
}

// Remove forgets the object with this root.
func (x *BlockIndex) Remove(root cid.Cid) {
	x.mu.Lock()
	x.removeLocked(root)
	x.mu.Unlock()
}

func (x *BlockIndex) removeLocked(root cid.Cid) {
	for _, c := range x.roots[root] {
		r := x.blocks[c]
		kept := r.roots[:0]
		for _, o := range r.roots {
			if !o.Equals(root) {
				kept = append(kept, o)
			}
		}
		if len(kept) == 0 {
			delete(x.blocks, c)
			continue
		}
		r.roots = kept
		x.blocks[c] = r
	}
	delete(x.roots, root)
}

// Lookup says where c lives; false if no indexed object holds it.
func (x *BlockIndex) Lookup(c cid.Cid) (BlockInfo, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r, ok := x.blocks[c]
	if !ok {
		return BlockInfo{}, false
	}
	return BlockInfo{Root: r.roots[0], Size: r.size, Inline: r.inline}, true
}

// Has reports whether root is indexed.
func (x *BlockIndex) Has(root cid.Cid) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.roots[root]
	return ok
}

// Roots returns the indexed roots.
func (x *BlockIndex) Roots() []cid.Cid {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Collect(maps.Keys(x.roots))
}

// Len returns the number of distinct blocks indexed.
func (x *BlockIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blocks)
}

// Blocks returns the distinct blocks indexed (a copy).
func (x *BlockIndex) Blocks() []cid.Cid {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Collect(maps.Keys(x.blocks))
}
