package node

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// Stat describes how an object is stored and what it can survive now.
type Stat struct {
	Root string `json:"root"`
	Size uint64 `json:"size"`
	// Blocks counts the object's leaves, repeats counted: dispersed and
	// inline.
	Blocks int `json:"blocks"`
	// Inline counts its distinct leaves kept in the replicated metadata
	// (small ones): every member holds them, they have no fragments.
	Inline int    `json:"inline_blocks,omitempty"`
	Coding string `json:"coding"`
	// Holders lists every target holding fragments, with counts.
	Holders []HolderStat `json:"holders"`
	// SpareFragments is the fewest fragments any block can still lose
	// (valid fragments beyond K); negative means some block is unreadable.
	SpareFragments int `json:"spare_fragments"`
	// TolerableNodeLosses is how many holders can be lost, in the worst
	// choice, with every block still readable (an object all inline: the
	// pool but one, since every member holds it).
	TolerableNodeLosses int `json:"tolerable_node_losses"`
	// Unreachable lists holders that did not answer.
	Unreachable []string `json:"unreachable"`
	// Damaged lists blocks with fewer than N valid fragments.
	Damaged []BlockStat `json:"damaged,omitempty"`
	// Layout is where each distinct block's fragments live.
	Layout []BlockLayout `json:"layout"`
	// Health is the worst block's: full, degraded, at_risk or lost.
	Health string `json:"health"`
}

// HolderStat is one target's share of an object.
type HolderStat struct {
	ID        string `json:"id"`
	Fragments int    `json:"fragments"`
	Missing   int    `json:"missing"`
	// Corrupt counts fragments that failed their check (with verify);
	// they are counted in Missing too.
	Corrupt   int  `json:"corrupt,omitempty"`
	Reachable bool `json:"reachable"`
}

// BlockStat is a block short of fragments.
type BlockStat struct {
	Index int    `json:"index"`
	CID   string `json:"cid"`
	Valid int    `json:"valid"`
}

// BlockLayout is where one block's fragments live: Holders[i] holds
// fragment i; Missing lists the fragment indices not there (or, with
// verify, not valid). An inline block has no holders: its bytes are in
// the replicated metadata.
type BlockLayout struct {
	Index   int      `json:"index"`
	CID     string   `json:"cid"`
	Inline  bool     `json:"inline,omitempty"`
	Holders []string `json:"holders"`
	Missing []int    `json:"missing,omitempty"`
	// Corrupt lists the indices whose fragment failed its check (with
	// verify); they are in Missing too.
	Corrupt []int `json:"corrupt,omitempty"`
}

// holderTimeout bounds how long stat waits for one request to a holder.
const holderTimeout = 15 * time.Second

// Stat asks a holder in requests of at most these many keys: presence
// checks are small; fetched fragments (64 KiB each at the default block
// size) are checked and dropped a few MiB at a time, so verifying an
// object of any size holds little in memory and no request runs into
// the timeout.
const (
	hasBatch    = 4096
	verifyBatch = 64
)

// fragmentBatcher is a store that answers many keys at once (the
// fragment exchange).
type fragmentBatcher interface {
	HasFragments(ctx context.Context, keys [][]byte) ([]bool, []error)
	GetFragments(ctx context.Context, keys [][]byte) ([][]byte, []error)
}

// probe is one fragment to check.
type probe struct {
	block, index int // into leaves, fragment index
	key          []byte
	ok           bool
	err          error // the holder failed to answer (or had no such fragment)
	bad          error // it answered with a fragment that failed its check
}

// Stat checks every fragment of an object, all holders in parallel: with
// verify, each is fetched and checked against its tag; otherwise its
// presence is asked.
func (r *Repo) Stat(ctx context.Context, c cid.Cid, verify bool) (*Stat, error) {
	m, err := r.manifest(ctx, c)
	if err != nil {
		return nil, err
	}
	all, err := m.AllLeaves()
	if err != nil {
		return nil, err
	}
	codec, err := r.codec(m.Coding)
	if err != nil {
		return nil, err
	}
	place := r.readPlacement(m)
	st := &Stat{Root: m.Root.String(), Size: m.Size, Blocks: len(all), Coding: m.Coding.String(),
		SpareFragments: m.Coding.N - m.Coding.K, Unreachable: []string{}, Holders: []HolderStat{}}
	// distinct blocks, at their first position, in the layout; the
	// dispersed ones (leaves) are probed
	var leaves []cid.Cid
	var rowOf []int // of leaves: its row in the layout
	seen := map[cid.Cid]bool{}
	for i, l := range all {
		if seen[l.CID] {
			continue
		}
		seen[l.CID] = true
		if l.Inline {
			st.Inline++
		} else {
			leaves, rowOf = append(leaves, l.CID), append(rowOf, len(st.Layout))
		}
		st.Layout = append(st.Layout, BlockLayout{Index: i, CID: l.CID.String(), Inline: l.Inline, Holders: []string{}})
	}
	if st.Layout == nil {
		st.Layout = []BlockLayout{}
	}
	stores := map[string]fungi.FragmentStore{}
	per := map[string][]*probe{}
	for bi, leaf := range leaves {
		targets, err := place.Place(leaf, m.Coding.N)
		if err != nil {
			return nil, err
		}
		row := &st.Layout[rowOf[bi]]
		row.Holders = make([]string, len(targets))
		for i, t := range targets {
			stores[t.ID] = t.Store
			per[t.ID] = append(per[t.ID], &probe{block: bi, index: i, key: fungi.FragmentKey(leaf, m.Coding, i)})
			row.Holders[i] = t.ID
		}
	}
	var wg sync.WaitGroup
	for id, ps := range per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checkHolder(ctx, stores[id], ps, verify, func(p *probe, data []byte) error {
				return codec.Verify(leaves[p.block], p.index, data)
			})
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	valid := make([]int, len(leaves))
	// per holder, the most fragments of one block it holds: losing it
	// costs that block that many
	worst := map[string]int{}
	ids := make([]string, 0, len(per))
	for id := range per {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		h := HolderStat{ID: id, Reachable: true}
		count := map[int]int{}
		for _, p := range per[id] {
			if p.err != nil && !errors.Is(p.err, fungi.ErrFragmentNotFound) {
				h.Reachable = false
			}
			row := &st.Layout[rowOf[p.block]]
			if p.bad != nil {
				h.Corrupt++
				row.Corrupt = append(row.Corrupt, p.index)
			}
			if p.ok {
				h.Fragments++
				valid[p.block]++
				count[p.block]++
			} else {
				h.Missing++
				row.Missing = append(row.Missing, p.index)
			}
		}
		for _, n := range count {
			worst[id] = max(worst[id], n)
		}
		if !h.Reachable {
			st.Unreachable = append(st.Unreachable, id)
		}
		st.Holders = append(st.Holders, h)
	}
	worstHealth := fungi.Full // inline blocks are: every member holds them
	for bi := range leaves {
		row := &st.Layout[rowOf[bi]]
		sort.Ints(row.Missing)
		sort.Ints(row.Corrupt)
		st.SpareFragments = min(st.SpareFragments, valid[bi]-m.Coding.K)
		if valid[bi] < m.Coding.N {
			st.Damaged = append(st.Damaged, BlockStat{Index: row.Index, CID: row.CID, Valid: valid[bi]})
		}
		present := make([]bool, m.Coding.N)
		for i := range present {
			present[i] = !slices.Contains(row.Missing, i) && !slices.Contains(st.Unreachable, row.Holders[i])
		}
		h, _ := fungi.Assess(m.Coding, row.Holders, present, len(m.Pool))
		worstHealth = max(worstHealth, h)
	}
	st.Health = worstHealth.String()
	// lose the holders that hurt most first, while the spare lasts
	costs := make([]int, 0, len(worst))
	for _, n := range worst {
		costs = append(costs, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(costs)))
	spare := st.SpareFragments
	for _, n := range costs {
		if n > spare {
			break
		}
		spare -= n
		st.TolerableNodeLosses++
	}
	if len(leaves) == 0 && st.Inline > 0 {
		// nothing dispersed: any member keeping the metadata reads it
		members := len(m.Pool) // an all-inline manifest records none now
		if r.cluster != nil {
			members = max(members, len(r.cluster.fsm().Members()))
		}
		st.TolerableNodeLosses = max(0, members-1)
	}
	return st, nil
}

// check asks one holder about its probes: in batches when it can, else
// one at a time.
// checkHolder checks a holder's probes a batch at a time. A holder that
// does not answer a batch in time, or at all, is unreachable: the rest of
// its probes get the same error without being asked, so it never holds
// up the report.
func checkHolder(ctx context.Context, s fungi.FragmentStore, ps []*probe, verify bool, valid func(*probe, []byte) error) {
	n := hasBatch
	if verify {
		n = verifyBatch
	}
	for len(ps) > 0 {
		batch := ps[:min(n, len(ps))]
		ps = ps[len(batch):]
		bctx, cancel := context.WithTimeout(ctx, holderTimeout)
		check(bctx, s, batch, verify, valid)
		cancel()
		if err := unanswered(batch); err != nil {
			for _, p := range ps {
				p.err = err
			}
			return
		}
	}
}

// unanswered returns the error of a batch no probe of which got an
// answer (found or not found); nil if some did.
func unanswered(batch []*probe) error {
	for _, p := range batch {
		if p.err == nil || errors.Is(p.err, fungi.ErrFragmentNotFound) {
			return nil
		}
	}
	return batch[0].err
}

func check(ctx context.Context, s fungi.FragmentStore, ps []*probe, verify bool, valid func(*probe, []byte) error) {
	if b, ok := s.(fragmentBatcher); ok {
		keys := make([][]byte, len(ps))
		for i, p := range ps {
			keys[i] = p.key
		}
		if verify {
			vals, errs := b.GetFragments(ctx, keys)
			for i, p := range ps {
				if p.err = errs[i]; p.err == nil {
					p.bad = valid(p, vals[i])
				}
				p.ok = p.err == nil && p.bad == nil
			}
			return
		}
		found, errs := b.HasFragments(ctx, keys)
		for i, p := range ps {
			p.ok, p.err = found[i] && errs[i] == nil, errs[i]
		}
		return
	}
	for _, p := range ps {
		if verify {
			var data []byte
			if data, p.err = s.GetFragment(ctx, p.key); p.err == nil {
				p.bad = valid(p, data)
			}
			p.ok = p.err == nil && p.bad == nil
			continue
		}
		p.ok, p.err = s.HasFragment(ctx, p.key)
		p.ok = p.ok && p.err == nil
	}
}

// readPlacement is where a manifest's fragments are for this node.
func (r *Repo) readPlacement(m *fungi.Manifest) fungi.Placement {
	if len(m.Pool) == 0 {
		return r.placement()
	}
	if r.cluster != nil {
		return r.cluster.placement(m)
	}
	local := r.local()
	self, _ := PeerID(r.Path) // a daemon's adds name this node by its peer ID
	return fungi.SpreadOf(m, func(p fungi.PoolMember) fungi.FragmentStore {
		if p.ID == "local" || p.ID == self {
			return local
		}
		return nil
	})
}
