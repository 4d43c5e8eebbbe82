package node

import (
	"context"
	"sort"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// Stat describes how an object is stored and what it can survive now.
type Stat struct {
	Root   string `json:"root"`
	Size   uint64 `json:"size"`
	Blocks int    `json:"blocks"`
	Coding string `json:"coding"`
	// Holders lists every target holding fragments, with counts.
	Holders []HolderStat `json:"holders"`
	// SpareFragments is the fewest fragments any block can still lose
	// (valid fragments beyond K); negative means some block is unreadable.
	SpareFragments int `json:"spare_fragments"`
	// TolerableNodeLosses is how many holders can be lost, in the worst
	// choice, with every block still readable.
	TolerableNodeLosses int `json:"tolerable_node_losses"`
	// Unreachable lists holders that did not answer.
	Unreachable []string `json:"unreachable"`
	// Damaged lists blocks with fewer than N valid fragments.
	Damaged []BlockStat `json:"damaged,omitempty"`
}

// HolderStat is one target's share of an object.
type HolderStat struct {
	ID        string `json:"id"`
	Fragments int    `json:"fragments"`
	Missing   int    `json:"missing"`
}

// BlockStat is a block short of fragments.
type BlockStat struct {
	Index int    `json:"index"`
	CID   string `json:"cid"`
	Valid int    `json:"valid"`
}

// Stat checks every fragment of an object: with verify, each is fetched and
// checked against its tag; otherwise its presence is asked.
func (r *Repo) Stat(ctx context.Context, c cid.Cid, verify bool) (*Stat, error) {
	m, err := r.manifest(ctx, c)
	if err != nil {
		return nil, err
	}
	leaves, err := m.LeafCIDs()
	if err != nil {
		return nil, err
	}
	codec, err := fungi.NewCodec(r.Secret(), m.Coding)
	if err != nil {
		return nil, err
	}
	place := r.readPlacement(m)
	st := &Stat{Root: m.Root.String(), Size: m.Size, Blocks: len(leaves), Coding: m.Coding.String(),
		SpareFragments: m.Coding.N - m.Coding.K, Unreachable: []string{}}
	holders := map[string]*HolderStat{}
	unreachable := map[string]bool{}
	// per holder, the most fragments of one block it holds: losing it costs
	// that block that many
	worst := map[string]int{}
	seen := map[cid.Cid]bool{}
	for bi, leaf := range leaves {
		if seen[leaf] {
			continue
		}
		seen[leaf] = true
		targets, err := place.Place(leaf, m.Coding.N)
		if err != nil {
			return nil, err
		}
		valid := 0
		per := map[string]int{}
		for i, t := range targets {
			h := holders[t.ID]
			if h == nil {
				h = &HolderStat{ID: t.ID}
				holders[t.ID] = h
			}
			key := fungi.FragmentKey(leaf, m.Coding, i)
			ok := false
			if verify {
				data, err := t.Store.GetFragment(ctx, key)
				if err != nil && err != fungi.ErrFragmentNotFound {
					unreachable[t.ID] = true
				}
				ok = err == nil && codec.Verify(leaf, i, data) == nil
			} else {
				has, err := t.Store.HasFragment(ctx, key)
				if err != nil {
					unreachable[t.ID] = true
				}
				ok = has
			}
			if ok {
				valid++
				h.Fragments++
				per[t.ID]++
			} else {
				h.Missing++
			}
		}
		for id, n := range per {
			worst[id] = max(worst[id], n)
		}
		st.SpareFragments = min(st.SpareFragments, valid-m.Coding.K)
		if valid < m.Coding.N {
			st.Damaged = append(st.Damaged, BlockStat{Index: bi, CID: leaf.String(), Valid: valid})
		}
	}
	for _, h := range holders {
		st.Holders = append(st.Holders, *h)
	}
	sort.Slice(st.Holders, func(i, j int) bool { return st.Holders[i].ID < st.Holders[j].ID })
	for id := range unreachable {
		st.Unreachable = append(st.Unreachable, id)
	}
	sort.Strings(st.Unreachable)
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
	return st, nil
}

// readPlacement is where a manifest's fragments are for this node.
func (r *Repo) readPlacement(m *fungi.Manifest) fungi.Spread {
	if len(m.Pool) == 0 {
		return r.placement()
	}
	local := r.local()
	return fungi.SpreadOf(m, func(p fungi.PoolMember) fungi.FragmentStore {
		if p.ID == "local" {
			return local
		}
		return nil
	})
}
