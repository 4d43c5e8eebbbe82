package fungi

import (
	"encoding/binary"
	"math"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/zeebo/blake3"
)

// Candidate is a node a repair may place fragments on, with its free
// bytes when the repair began (placement weighs it).
type Candidate struct {
	ID     string
	Domain string
	Free   uint64
}

// Move is one placement change after losses (a repair epoch): in every
// object written before it, the fragments that Lost held move to nodes of
// Pool. A Move is a few hundred bytes whatever the number of objects: the
// new holder of each fragment is derived, like the first placement, from
// the block's CID.
type Move struct {
	Seq  uint64
	Lost []string
	Pool []Candidate
	// Done: every fragment the move re-created has been written; until
	// then the lost holders' copies are kept (a holder that comes back
	// still serves them and orphan collection leaves them be).
	Done bool
}

// Layout is the one answer to "who holds fragment i of block b" for an
// object: the spread over the pool its add wrote to, then every move that
// applies to it, in order. Reads, stat, audits, the scrubber, orphan
// collection and repair all ask it.
type Layout struct {
	Pool  []PoolMember
	Moves []Move // the moves that apply to the object, ascending Seq
	// Store maps a node to its fragment store (nil: unreachable); only
	// Place uses it.
	Store func(id string) FragmentStore
}

var _ Placement = Layout{}

// LayoutOf is the layout of a manifest given the moves that apply to it.
func LayoutOf(m *Manifest, moves []Move, store func(id string) FragmentStore) Layout {
	return Layout{Pool: m.Pool, Moves: moves, Store: store}
}

// Holders returns the node of each fragment index 0..n-1 of block, and
// for each index the earlier holders whose copies are kept because a move
// that replaced them is not done (nil when none).
func (l Layout) Holders(block cid.Cid, n int) (cur []string, kept [][]string) {
	cur = l.initial(block, n)
	if cur == nil {
		return nil, nil
	}
	for _, mv := range l.Moves {
		if !intersects(cur, mv.Lost) {
			continue
		}
		prev := append([]string(nil), cur...)
		mv.apply(block, cur)
		if !mv.Done {
			for i := range cur {
				if cur[i] != prev[i] {
					if kept == nil {
						kept = make([][]string, n)
					}
					kept[i] = append(kept[i], prev[i])
				}
			}
		}
	}
	return cur, kept
}

// Current returns the node of each fragment index of block.
func (l Layout) Current(block cid.Cid, n int) []string {
	cur, _ := l.Holders(block, n)
	return cur
}

// Place implements Placement: the current holders, with their stores.
func (l Layout) Place(block cid.Cid, n int) ([]Target, error) {
	ids := l.Current(block, n)
	if ids == nil {
		return nil, ErrNoTargets
	}
	domains := map[string]string{}
	for _, p := range l.Pool {
		domains[p.ID] = p.Domain
	}
	for _, mv := range l.Moves {
		for _, c := range mv.Pool {
			domains[c.ID] = c.Domain
		}
	}
	out := make([]Target, n)
	for i, id := range ids {
		var s FragmentStore
		if l.Store != nil {
			s = l.Store(id)
		}
		if s == nil {
			s = unreachable{id}
		}
		out[i] = Target{ID: id, Domain: domains[id], Store: s}
	}
	return out, nil
}

// initial is the placement the object was written with.
func (l Layout) initial(block cid.Cid, n int) []string {
	if len(l.Pool) == 0 {
		return nil
	}
	sp := Spread{Pool: make([]Target, len(l.Pool))}
	for i, p := range l.Pool {
		sp.Pool[i] = Target{ID: p.ID, Domain: p.Domain}
	}
	ts, err := sp.Place(block, n)
	if err != nil {
		return nil
	}
	ids := make([]string, n)
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

// Nodes lists every node the layout can name (pool and moves' pools): a
// node outside it holds nothing of the object.
func (l Layout) Nodes() map[string]bool {
	out := map[string]bool{}
	for _, p := range l.Pool {
		out[p.ID] = true
	}
	for _, mv := range l.Moves {
		for _, c := range mv.Pool {
			out[c.ID] = true
		}
	}
	return out
}

func intersects(ids, set []string) bool {
	for _, id := range ids {
		if contains(set, id) {
			return true
		}
	}
	return false
}

func contains(set []string, id string) bool {
	for _, s := range set {
		if s == id {
			return true
		}
	}
	return false
}

// apply moves the fragments of block that lost nodes hold onto the move's
// pool: each to the candidate holding the fewest fragments of the block,
// then in the failure domain with the fewest, then first in a
// weighted rendezvous order (free space as the weight, so fuller nodes
// receive less). With enough live nodes every fragment lands on a node
// holding nothing else of the block.
func (mv *Move) apply(block cid.Cid, cur []string) {
	type cand struct {
		c    Candidate
		rank float64
	}
	var cands []cand
	kb := block.Bytes()
	for _, c := range mv.Pool {
		if contains(mv.Lost, c.ID) {
			continue
		}
		cands = append(cands, cand{c: c, rank: weightedRank(kb, c.ID, c.Free)})
	}
	if len(cands) == 0 {
		return
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].rank != cands[j].rank {
			return cands[i].rank < cands[j].rank
		}
		return cands[i].c.ID < cands[j].c.ID
	})
	dom := func(id, d string) string {
		if d == "" {
			return "id:" + id
		}
		return d
	}
	perNode := map[string]int{}
	perDomain := map[string]int{}
	domainOf := map[string]string{}
	for _, c := range cands {
		domainOf[c.c.ID] = dom(c.c.ID, c.c.Domain)
	}
	for _, id := range cur {
		if contains(mv.Lost, id) {
			continue
		}
		perNode[id]++
		if d, ok := domainOf[id]; ok {
			perDomain[d]++
		} else {
			perDomain["id:"+id]++
		}
	}
	for i, id := range cur {
		if !contains(mv.Lost, id) {
			continue
		}
		best := -1
		for j, c := range cands {
			if best < 0 {
				best = j
				continue
			}
			b := cands[best].c
			if n, bn := perNode[c.c.ID], perNode[b.ID]; n != bn {
				if n < bn {
					best = j
				}
				continue
			}
			if d, bd := perDomain[domainOf[c.c.ID]], perDomain[domainOf[b.ID]]; d < bd {
				best = j
			}
		}
		c := cands[best].c
		cur[i] = c.ID
		perNode[c.ID]++
		perDomain[domainOf[c.ID]]++
	}
}

// weightedRank is a weighted rendezvous score (lower wins): -ln(u)/w with
// u uniform in (0,1] from BLAKE3(block, id) and w the free GiB (at least
// 1/1024), so a node wins a block in proportion to its free space.
func weightedRank(block []byte, id string, free uint64) float64 {
	h := blake3.New()
	h.Write(block)
	h.Write([]byte(id))
	var sum [32]byte
	h.Sum(sum[:0])
	u := (float64(binary.BigEndian.Uint64(sum[:8])>>11) + 1) / (1 << 53)
	w := math.Max(float64(free)/(1<<30), 1.0/1024)
	return -math.Log(u) / w
}
