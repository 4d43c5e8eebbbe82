package node

import (
	"context"
	"fmt"
	"path"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
)

// treeHasher gives every directory of the shared tree a UnixFS CID, as
// Kubo's `ipfs files stat --hash` does for MFS, so a subtree can be
// fetched whole (gateway, `fungi get`, bitswap).
//
// Keeping it cheap: the replicated tree records on every directory the
// revision of the last change below it (consensus.TreeEntry.Rev). A
// directory's hash is kept with the revision it was computed at, so after
// a change only the directories on the changed path are built again (each
// from its children's kept hashes): O(depth × directory size), never the
// whole tree. Nothing about hashes is replicated: each node computes them
// on demand, deterministically from the same tree, and serves the blocks of
// the directories it computed (unknown CIDs first bring the root's hash up
// to date, so any node serves any current tree directory). A directory's
// old hash stops resolving once the directory changes: pin the content
// (`fungi pin add`) to keep a version.
type treeHasher struct {
	repo    *Repo
	fsm     func() *consensus.FSM
	profile fungi.Profile

	mu    sync.Mutex
	dirs  map[string]dirHash // tree path -> its hash at a revision
	byCID map[cid.Cid]string // a block of a current directory -> its path
	built *lru.Cache[string, builtDir]
	// refreshed is when an unknown CID last brought the hashes up to date
	refreshed time.Time
}

type dirHash struct {
	rev    uint64
	root   cid.Cid
	tsize  uint64
	blocks []cid.Cid
}

// builtDir holds a recently built directory's blocks, so fetching a HAMT
// directory shard by shard builds it once.
type builtDir struct {
	rev    uint64
	blocks map[cid.Cid]blocks.Block
}

func newTreeHasher(r *Repo, fsm func() *consensus.FSM) (*treeHasher, error) {
	p, err := fungi.ParseProfile(r.Config.Profile)
	if err != nil {
		return nil, err
	}
	built, _ := lru.New[string, builtDir](64)
	return &treeHasher{repo: r, fsm: fsm, profile: p, dirs: map[string]dirHash{}, byCID: map[cid.Cid]string{}, built: built}, nil
}

// Hash returns the CID and cumulative size of the tree directory at p.
func (h *treeHasher) Hash(ctx context.Context, p string) (cid.Cid, uint64, error) {
	f := h.fsm()
	e, ok := f.TreeStat(p)
	if !ok {
		return cid.Undef, 0, fmt.Errorf("%s: %w", p, ErrNotInTree)
	}
	if !e.Dir {
		return cid.Undef, 0, fmt.Errorf("%s is not a directory of the tree", p)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d, err := h.hash(ctx, f, p, e)
	return d.root, d.tsize, err
}

// hash computes (or reuses) the hash of the directory e at p; h.mu held.
func (h *treeHasher) hash(ctx context.Context, f *consensus.FSM, p string, e consensus.TreeEntry) (dirHash, error) {
	if d, ok := h.dirs[p]; ok && d.rev == e.Rev {
		return d, nil
	}
	kids, err := f.TreeList(p)
	if err != nil {
		return dirHash{}, err
	}
	links := make([]fungi.DirLink, 0, len(kids))
	for _, k := range kids {
		if err := ctx.Err(); err != nil {
			return dirHash{}, err
		}
		if k.Dir {
			d, err := h.hash(ctx, f, path.Join(p, k.Name), k)
			if err != nil {
				return dirHash{}, err
			}
			links = append(links, fungi.DirLink{Name: k.Name, Cid: d.root, Tsize: d.tsize})
			continue
		}
		c, err := cid.Decode(k.Target)
		if err != nil {
			return dirHash{}, fmt.Errorf("%s links a bad CID %q: %v", path.Join(p, k.Name), k.Target, err)
		}
		tsize := k.Tsize
		if k.Type == linkUnknown {
			ni, err := h.repo.describeCID(ctx, c)
			if err != nil {
				return dirHash{}, fmt.Errorf("%s: %w", path.Join(p, k.Name), err)
			}
			tsize = ni.Tsize
		}
		links = append(links, fungi.DirLink{Name: k.Name, Cid: c, Tsize: tsize})
	}
	root, tsize, blks, err := fungi.BuildDir(links, h.profile)
	if err != nil {
		return dirHash{}, fmt.Errorf("%s: %w", p, err)
	}
	if old, ok := h.dirs[p]; ok {
		for _, c := range old.blocks {
			if h.byCID[c] == p {
				delete(h.byCID, c)
			}
		}
	}
	d := dirHash{rev: e.Rev, root: root, tsize: tsize, blocks: make([]cid.Cid, len(blks))}
	bd := builtDir{rev: e.Rev, blocks: make(map[cid.Cid]blocks.Block, len(blks))}
	for i, b := range blks {
		d.blocks[i] = b.Cid()
		h.byCID[b.Cid()] = p
		bd.blocks[b.Cid()] = b
	}
	h.dirs[p] = d
	h.built.Add(p, bd)
	return d, nil
}

// Block returns block c when it is a block of a current directory of the
// tree. A CID it does not know brings the whole tree's hashes up to date
// first (cheap when the tree has not changed).
func (h *treeHasher) Block(ctx context.Context, c cid.Cid) (blocks.Block, bool) {
	if c.Prefix().Codec != cid.DagProtobuf {
		return nil, false
	}
	f := h.fsm()
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.byCID[c]
	if !ok {
		// at most one refresh a second: a stream of wants for CIDs nobody
		// has (bitswap is open to anyone) must not rebuild a tree that
		// keeps changing
		if time.Since(h.refreshed) < time.Second {
			return nil, false
		}
		h.refreshed = time.Now()
		if _, err := h.hash(ctx, f, "/", mustStat(f, "/")); err != nil {
			return nil, false
		}
		if p, ok = h.byCID[c]; !ok {
			return nil, false
		}
	}
	e, ok := f.TreeStat(p)
	if !ok || !e.Dir {
		return nil, false
	}
	d, err := h.hash(ctx, f, p, e)
	if err != nil {
		return nil, false
	}
	if bd, ok := h.built.Get(p); ok && bd.rev == d.rev {
		b, ok := bd.blocks[c]
		return b, ok
	}
	// built long ago: build it again from its children's kept hashes
	delete(h.dirs, p)
	if _, err := h.hash(ctx, f, p, e); err != nil {
		return nil, false
	}
	if bd, ok := h.built.Get(p); ok {
		b, ok := bd.blocks[c]
		return b, ok
	}
	return nil, false
}

// Has reports whether c is a block of a current tree directory.
func (h *treeHasher) Has(ctx context.Context, c cid.Cid) bool {
	_, ok := h.Block(ctx, c)
	return ok
}

func mustStat(f *consensus.FSM, p string) consensus.TreeEntry {
	e, _ := f.TreeStat(p)
	return e
}
