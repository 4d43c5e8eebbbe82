package fungi

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/zeebo/blake3"
)

// Target is a place fragments are stored: one node's fragment store.
type Target struct {
	// ID names the node (a peer ID; "local" for the repo's own ZDB).
	ID string
	// Domain is the failure domain (region, rack); "" is its own domain.
	Domain string
	Store  FragmentStore
}

// Placement decides where a block's fragments go and where a reader finds
// them. The result must depend only on the block and the placement's state,
// so writer and reader agree.
type Placement interface {
	// Place returns the target of each fragment index 0..n-1.
	Place(block cid.Cid, n int) ([]Target, error)
}

// ErrNoTargets: a placement has nowhere to put fragments.
var ErrNoTargets = errors.New("no storage targets")

// Spread places a block's n fragments on n distinct targets when the pool
// has that many, and evenly (as few per target as possible) when it has
// fewer. Targets are ordered per block by rendezvous hashing, so blocks
// spread their load over the whole pool and a change of pool moves few
// fragments. Failure domains are filled round-robin: no domain gets a
// second fragment before every domain has one.
type Spread struct {
	Pool []Target
}

var _ Placement = Spread{}

// Place implements Placement.
func (s Spread) Place(block cid.Cid, n int) ([]Target, error) {
	if len(s.Pool) == 0 {
		return nil, ErrNoTargets
	}
	type scored struct {
		t     Target
		score [8]byte
	}
	ranked := make([]scored, len(s.Pool))
	kb := block.Bytes()
	for i, t := range s.Pool {
		h := blake3.New()
		h.Write(kb)
		h.Write([]byte(t.ID))
		var sc scored
		sc.t = t
		copy(sc.score[:], h.Sum(nil))
		ranked[i] = sc
	}
	sort.Slice(ranked, func(i, j int) bool { return string(ranked[i].score[:]) < string(ranked[j].score[:]) })
	// interleave failure domains, keeping the rendezvous order inside each
	var domains []string
	byDomain := map[string][]Target{}
	for _, r := range ranked {
		d := r.t.Domain
		if d == "" {
			d = "id:" + r.t.ID
		}
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], r.t)
	}
	order := make([]Target, 0, len(ranked))
	for len(order) < len(ranked) {
		for _, d := range domains {
			if ts := byDomain[d]; len(ts) > 0 {
				order = append(order, ts[0])
				byDomain[d] = ts[1:]
			}
		}
	}
	out := make([]Target, n)
	for i := range out {
		out[i] = order[i%len(order)]
	}
	return out, nil
}

// SpreadOf rebuilds the placement a manifest was written with; store maps a
// pool member to its fragment store (nil: unreachable).
func SpreadOf(m *Manifest, store func(PoolMember) FragmentStore) Spread {
	var sp Spread
	for _, p := range m.Pool {
		s := store(p)
		if s == nil {
			s = unreachable{p.ID}
		}
		sp.Pool = append(sp.Pool, Target{ID: p.ID, Domain: p.Domain, Store: s})
	}
	return sp
}

// unreachable stands for a pool member this node cannot reach.
type unreachable struct{ id string }

var errUnreachable = errors.New("holder unreachable")

func (u unreachable) PutFragment(context.Context, []byte, []byte) error {
	return fmt.Errorf("%s: %w", u.id, errUnreachable)
}
func (u unreachable) GetFragment(context.Context, []byte) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", u.id, errUnreachable)
}
func (u unreachable) HasFragment(context.Context, []byte) (bool, error) {
	return false, fmt.Errorf("%s: %w", u.id, errUnreachable)
}

// Tolerance reports how many whole targets (nodes) can be lost while every
// block placed by p stays readable with coding c: with fragments spread as
// Spread does, losing the targets that hold the most fragments first.
func (s Spread) Tolerance(c Coding) int {
	t := len(s.Pool)
	if t == 0 {
		return 0
	}
	per := make([]int, t)
	for i := 0; i < c.N; i++ {
		per[i%t]++
	}
	lost, down := 0, 0
	for _, p := range per { // per is non-increasing
		if lost+p > c.N-c.K {
			break
		}
		lost += p
		down++
	}
	return down
}

// DescribeTolerance says in a sentence what a placement survives.
func (s Spread) DescribeTolerance(c Coding) string {
	return fmt.Sprintf("%d fragments on %d node(s): survives the loss of any %d node(s) and any %d fragments",
		c.N, min(len(s.Pool), c.N), s.Tolerance(c), c.N-c.K)
}
