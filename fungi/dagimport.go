package fungi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Where the blocks of an imported DAG live. A block with links is kept
// inline in the manifest up to InlineNodeMax (walking the DAG then needs no
// fetch); a block without links (raw, or e.g. a dag-pb leaf of a CIDv0
// file) only up to InlineLeafMax, since below that storing it in the
// replicated metadata costs less than its fragments (docs/architecture.md
// has the figures). Bigger blocks are dispersed as fragments like an
// added file's leaves. Identity CIDs carry their block: never stored.
const (
	InlineLeafMax = 512
	InlineNodeMax = 256 << 10
	// MaxImportInline bounds the inline bytes of one import: its manifests
	// are committed in one raft entry (consensus.MaxEntrySize, 65 MiB).
	MaxImportInline = 48 << 20
)

// ErrRootNotInCAR: a root named by a CAR header is in none of the CAR
// files of the import.
var ErrRootNotInCAR = errors.New("root is not in the CAR file(s)")

// ErrImportTooLarge: the import's inline blocks exceed MaxImportInline.
var ErrImportTooLarge = errors.New("too much DAG metadata for one import")

// DAGImport builds the manifests of a DAG import: the blocks of one or
// more CAR files, of any codec, given one at a time. Dispersed blocks go to
// the Writer as they come (nothing of them is kept but CID, size and
// links); inline ones are kept for the manifests. Finish makes one manifest
// per root: the blocks of the import reachable from it, and what it links
// to that the import does not hold (a partial DAG). Blocks no root reaches
// go into one more manifest, so nothing imported is unreferenced.
//
// One goroutine drives a DAGImport; it is not reusable.
type DAGImport struct {
	w      *Writer
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
	inline blocks.Block // nil when dispersed or identity
}

// NewDAGImport returns an import dispersing through w.
func NewDAGImport(w *Writer) *DAGImport {
	return &DAGImport{w: w, blocks: map[cid.Cid]*importedBlock{}}
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
	case inlined(c, size, len(links) > 0):
		d.inline += size + len(c.Bytes())
		if d.inline > MaxImportInline {
			return fmt.Errorf("%w: more than %d MiB of small blocks and nodes with links (they are kept in the cluster's replicated metadata, committed at once): split the CAR", ErrImportTooLarge, MaxImportInline>>20)
		}
		ib.inline = blocks.Block(blk)
		if b, ok := blk.(*blocks.BasicBlock); ok {
			// the CAR reader's buffer may be big: keep only the block
			ib.inline, _ = blocks.NewBlockWithCid(bytes.Clone(b.RawData()), c)
		}
	default:
		if err := d.w.Disperse(ctx, blk); err != nil {
			return err
		}
	}
	return nil
}

// inlined says whether a block is kept in its manifest.
func inlined(c cid.Cid, size int, hasLinks bool) bool {
	if hasLinks {
		return size <= InlineNodeMax
	}
	return size <= InlineLeafMax
}

// ImportedDAG is one manifest of an import.
type ImportedDAG struct {
	Manifest *Manifest
	// Missing lists the CIDs the DAG links to that the import does not
	// hold (sorted by CID bytes): the DAG is complete within the import
	// when it is empty.
	Missing []cid.Cid
	// Loose marks the manifest of the blocks no root reaches (its Root is
	// the first of them in the CAR).
	Loose bool
}

// Key is a name for the manifest's content that is the same whenever the
// same blocks are imported (for manifests that cannot be named by their
// root): "<prefix>/<root>/<hash of the blocks' CIDs>".
func (d ImportedDAG) Key(prefix string) string {
	h := sha256.New()
	cs := make([][]byte, 0, len(d.Manifest.Nodes)+len(d.Manifest.Dispersed))
	for c := range d.Manifest.Nodes {
		cs = append(cs, c.Bytes())
	}
	for _, b := range d.Manifest.Dispersed {
		cs = append(cs, b.CID.Bytes())
	}
	sort.Slice(cs, func(i, j int) bool { return bytes.Compare(cs[i], cs[j]) < 0 })
	for _, c := range cs {
		h.Write(c)
	}
	return fmt.Sprintf("%s/%s/%x", prefix, d.Manifest.Root, h.Sum(nil)[:12])
}

// Finish waits for the dispersed blocks and returns the manifests: one per
// root, in the order the headers named them, then the loose blocks'. A root
// the import does not hold fails it (ErrRootNotInCAR).
func (d *DAGImport) Finish() ([]ImportedDAG, error) {
	if err := d.w.Wait(); err != nil {
		return nil, err
	}
	for _, r := range d.roots {
		if _, ok := d.blocks[r]; !ok && !IsIdentity(r) {
			return nil, fmt.Errorf("%s: %w", r, ErrRootNotInCAR)
		}
	}
	reached := map[cid.Cid]bool{}
	var out []ImportedDAG
	for _, r := range d.roots {
		dag, err := d.manifest(r, []cid.Cid{r}, reached)
		if err != nil {
			return nil, err
		}
		out = append(out, dag)
	}
	var loose []cid.Cid
	for _, c := range d.order {
		if !reached[c] && !IsIdentity(c) {
			loose = append(loose, c)
		}
	}
	if len(loose) > 0 {
		dag, err := d.manifest(loose[0], loose, reached)
		if err != nil {
			return nil, err
		}
		dag.Loose = true
		out = append(out, dag)
	}
	return out, nil
}

// manifest gathers the blocks reachable from starts into a manifest with
// root root, marking them in reached.
func (d *DAGImport) manifest(root cid.Cid, starts []cid.Cid, reached map[cid.Cid]bool) (ImportedDAG, error) {
	m := &Manifest{Root: root, Coding: d.w.Coding(), Pool: d.w.Pool(), Nodes: map[cid.Cid]blocks.Block{}, Imported: true}
	var missing []cid.Cid
	seen := map[cid.Cid]bool{}
	stack := slices.Clone(starts)
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		ib, ok := d.blocks[c]
		if !ok && IsIdentity(c) {
			blk, err := IdentityBlock(c)
			if err != nil {
				return ImportedDAG{}, err
			}
			links, err := Links(blk)
			if err != nil {
				return ImportedDAG{}, err
			}
			ib = &importedBlock{links: links}
		} else if !ok {
			missing = append(missing, c)
			continue
		}
		reached[c] = true
		stack = append(stack, ib.links...)
		switch {
		case IsIdentity(c):
			continue
		case ib.inline != nil:
			m.Nodes[c] = ib.inline
		default:
			m.Dispersed = append(m.Dispersed, BlockRef{CID: c, Size: uint32(ib.size)})
			m.Stored += uint64(d.w.StoredBytes(c))
		}
		m.Size += uint64(ib.size)
	}
	sort.Slice(m.Dispersed, func(i, j int) bool { return bytes.Compare(m.Dispersed[i].CID.Bytes(), m.Dispersed[j].CID.Bytes()) < 0 })
	sort.Slice(missing, func(i, j int) bool { return bytes.Compare(missing[i].Bytes(), missing[j].Bytes()) < 0 })
	m.Leaves = uint64(len(m.Dispersed))
	return ImportedDAG{Manifest: m, Missing: missing}, nil
}
