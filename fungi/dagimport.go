package fungi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Where the blocks of an import or an add live. A block with links is kept
// inline in the manifest up to InlineNodeMax (walking the DAG then needs no
// fetch); a block without links (a raw leaf of an added file, or of an
// imported DAG, or e.g. a dag-pb leaf of a CIDv0 file) only up to
// InlineLeafMax: such a block reads with no fragment round trip, and a
// coded leaf just past it costs at most 3x its size in fragments and ZDB
// records (docs/architecture.md, "Small objects", has the figures and the
// price: every member keeps inline bytes). Bigger blocks are dispersed as
// fragments. Identity CIDs carry their block: never stored.
const (
	InlineLeafMax = 1536
	InlineNodeMax = 256 << 10
	// MaxImportInline bounds the inline bytes of one import: its manifests
	// are committed in one raft entry (consensus.MaxEntrySize, 65 MiB).
	MaxImportInline = 48 << 20
	// MaxAddInline bounds the leaves one add keeps inline (bytes and
	// CIDs, Writer.InlineBudget): past it, small leaves are dispersed, so
	// an add of a million tiny files does not make a huge raft entry.
	MaxAddInline = 16 << 20
)

// ErrRootNotInCAR: a root named by a CAR header is in none of the CAR
// files of the import (nor already stored).
var ErrRootNotInCAR = errors.New("root is not in the CAR file(s)")

// ErrImportTooLarge: the import's inline blocks exceed MaxImportInline, or
// it needs more than MaxImportManifests manifests.
var ErrImportTooLarge = errors.New("too much DAG metadata for one import")

// MaxImportManifests bounds the manifests one import makes (its roots and
// the blocks no root reaches).
const MaxImportManifests = 16384

// DAGImport builds the manifests of a DAG import: the blocks of one or
// more CAR files, of any codec, given one at a time. Dispersed blocks go to
// the Writer as they come (nothing of them is kept but CID, size and
// links); inline ones are kept for the manifests. Blocks the store already
// holds (Held) are neither stored again nor put in a new manifest.
//
// Manifests then covers every new block with manifests, each named by its
// root and holding blocks reachable from it: one per root of the CAR
// headers, then one per block that no other new block links to (blocks no
// root reaches: Kubo imports them too). A manifest lists what its blocks
// link to that it does not hold (Missing): a partial DAG, whose missing
// blocks may be in another manifest, already stored, or nowhere.
//
// One goroutine drives a DAGImport; it is not reusable.
type DAGImport struct {
	w      *Writer
	held   func(cid.Cid) bool
	blocks map[cid.Cid]*importedBlock
	order  []cid.Cid // first-seen order
	roots  []cid.Cid
	inline int

	// Count and Bytes are the blocks read and their bytes, repeats
	// included (what Kubo's --stats reports).
	Count, Bytes uint64
}

type importedBlock struct {
	size   int
	links  []cid.Cid
	inline blocks.Block // nil when dispersed, held or identity
	held   bool         // already stored: not stored again
}

// NewDAGImport returns an import dispersing through w. held, if set,
// reports blocks the store already holds (they are skipped).
func NewDAGImport(w *Writer, held func(cid.Cid) bool) *DAGImport {
	return &DAGImport{w: w, held: held, blocks: map[cid.Cid]*importedBlock{}}
}

// AddRoots records roots of a CAR header (repeats ignored).
func (d *DAGImport) AddRoots(roots []cid.Cid) {
	for _, r := range roots {
		if !slices.Contains(d.roots, r) {
			d.roots = append(d.roots, r)
		}
	}
}

// Roots returns the roots recorded, in order.
func (d *DAGImport) Roots() []cid.Cid { return d.roots }

// Add takes one block, verified against its CID by the caller (CARReader
// does). Blocks of codecs we cannot decode, or with CIDs Kubo would refuse,
// fail the import.
func (d *DAGImport) Add(ctx context.Context, blk blocks.Block) error {
	c := blk.Cid()
	if err := CheckCID(c); err != nil {
		return err
	}
	size := len(blk.RawData())
	d.Count++
	d.Bytes += uint64(size)
	if _, dup := d.blocks[c]; dup {
		return nil
	}
	links, err := Links(blk)
	if err != nil {
		return err
	}
	ib := &importedBlock{size: size, links: links}
	d.blocks[c] = ib
	d.order = append(d.order, c)
	switch {
	case IsIdentity(c):
	case d.held != nil && d.held(c):
		ib.held = true
	case inlined(size, len(links) > 0):
		d.inline += size + len(c.Bytes())
		if d.inline > MaxImportInline {
			return fmt.Errorf("%w: more than %d MiB of small blocks and nodes with links (they are kept in the cluster's replicated metadata, committed at once): split the CAR", ErrImportTooLarge, MaxImportInline>>20)
		}
		// not the CAR reader's section buffer (CID and block): the block
		ib.inline, _ = blocks.NewBlockWithCid(bytes.Clone(blk.RawData()), c)
	default:
		if err := d.w.Disperse(ctx, blk); err != nil {
			return err
		}
	}
	return nil
}

// inlined says whether a block is kept in its manifest.
func inlined(size int, hasLinks bool) bool {
	if hasLinks {
		return size <= InlineNodeMax
	}
	return size <= InlineLeafMax
}

// Finish waits for the dispersed blocks. A root that is neither in the
// import nor held fails it (ErrRootNotInCAR).
func (d *DAGImport) Finish() error {
	if err := d.w.Wait(); err != nil {
		return err
	}
	for _, r := range d.roots {
		if _, ok := d.blocks[r]; !ok && !IsIdentity(r) && (d.held == nil || !d.held(r)) {
			return fmt.Errorf("%s: %w", r, ErrRootNotInCAR)
		}
	}
	return nil
}

// LinksOf returns the links of a block of the import (false: not in it).
func (d *DAGImport) LinksOf(c cid.Cid) ([]cid.Cid, bool) {
	ib, ok := d.blocks[c]
	if !ok {
		if IsIdentity(c) {
			if blk, err := IdentityBlock(c); err == nil {
				links, err := Links(blk)
				return links, err == nil
			}
		}
		return nil, false
	}
	return ib.links, true
}

// Manifests returns the manifests that cover the new blocks (neither held
// nor identity), after Finish: the roots' first, in the order the headers
// named them, then those of blocks no other new block links to, in CAR
// order. No two have the same root; none holds a held block.
func (d *DAGImport) Manifests() ([]*Manifest, error) {
	remaining := map[cid.Cid]bool{}
	for _, c := range d.order {
		if ib := d.blocks[c]; !ib.held && !IsIdentity(c) {
			remaining[c] = true
		}
	}
	var out []*Manifest
	take := func(starts []cid.Cid) error {
		for _, r := range starts {
			if !remaining[r] {
				continue
			}
			if len(out) == MaxImportManifests {
				return fmt.Errorf("%w: more than %d roots and blocks that no other block links to", ErrImportTooLarge, MaxImportManifests)
			}
			m, err := d.manifest(r, remaining)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	}
	if err := take(d.roots); err != nil {
		return nil, err
	}
	if len(remaining) > 0 {
		linked := map[cid.Cid]bool{}
		for c := range remaining {
			for _, l := range d.blocks[c].links {
				linked[l] = true
			}
		}
		var sources []cid.Cid
		for _, c := range d.order {
			if remaining[c] && !linked[c] {
				sources = append(sources, c)
			}
		}
		if err := take(sources); err != nil {
			return nil, err
		}
	}
	if len(remaining) > 0 { // a DAG has no cycles: every block has a source
		return nil, fmt.Errorf("import: %d blocks in no manifest", len(remaining))
	}
	return out, nil
}

// manifest takes the blocks of remaining reachable from root (through
// identity CIDs, never stored) into a manifest named by root.
func (d *DAGImport) manifest(root cid.Cid, remaining map[cid.Cid]bool) (*Manifest, error) {
	m := &Manifest{Root: root, Coding: d.w.Coding(), Pool: d.w.Pool(), Nodes: map[cid.Cid]blocks.Block{}, Imported: true}
	missing := map[cid.Cid]bool{}
	err := WalkDAG(root, d.LinksOf, func(c cid.Cid) ([]cid.Cid, error) {
		if !remaining[c] {
			missing[c] = true
			return nil, nil
		}
		delete(remaining, c)
		ib := d.blocks[c]
		if ib.inline != nil {
			m.Nodes[c] = ib.inline
		} else {
			m.Dispersed = append(m.Dispersed, BlockRef{CID: c, Size: uint32(ib.size)})
			m.Stored += uint64(d.w.StoredBytes(c))
		}
		m.Size += uint64(ib.size)
		return ib.links, nil
	})
	if err != nil {
		return nil, err
	}
	for c := range missing {
		m.Missing = append(m.Missing, c)
	}
	byBytes := func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) }
	slices.SortFunc(m.Dispersed, func(a, b BlockRef) int { return byBytes(a.CID, b.CID) })
	slices.SortFunc(m.Missing, byBytes)
	m.Leaves = uint64(len(m.Dispersed))
	return m, nil
}
