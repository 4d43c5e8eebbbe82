package fungi

import (
	"bytes"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"
)

// Health is how much of its redundancy a block (or an object: its worst
// block) still has.
type Health int

// The health classes, best first.
const (
	// Full: all N fragments present, spread as when written.
	Full Health = iota
	// Degraded: some fragments missing (or doubled up on one node), but
	// the block survives the loss of any one more holder.
	Degraded
	// AtRisk: readable, but losing one more holder (the worst one) could
	// make it unreadable: no spare left.
	AtRisk
	// Lost: fewer than K fragments are reachable.
	Lost
)

var healthNames = [...]string{"full", "degraded", "at_risk", "lost"}

func (h Health) String() string {
	if int(h) < len(healthNames) {
		return healthNames[h]
	}
	return "unknown"
}

// HealthCounts counts objects or blocks per Health.
type HealthCounts struct {
	Full     int `json:"full"`
	Degraded int `json:"degraded"`
	AtRisk   int `json:"at_risk"`
	Lost     int `json:"lost"`
}

// Add counts one more of h.
func (c *HealthCounts) Add(h Health) {
	switch h {
	case Full:
		c.Full++
	case Degraded:
		c.Degraded++
	case AtRisk:
		c.AtRisk++
	default:
		c.Lost++
	}
}

// Assess classifies one block: holders[i] holds fragment i, present[i]
// says it is there and valid as far as is known; poolSize is the number
// of nodes the block was first spread over (more than one fragment per
// node is full when the pool was smaller than N). It also returns the
// block's node tolerance: how many holders, the worst first, it can lose
// and stay readable.
func Assess(c Coding, holders []string, present []bool, poolSize int) (Health, int) {
	per := map[string]int{}
	n := 0
	for i, ok := range present {
		if ok {
			per[holders[i]]++
			n++
		}
	}
	if n < c.K {
		return Lost, 0
	}
	counts := make([]int, 0, len(per))
	most := 0
	for _, k := range per {
		counts = append(counts, k)
		most = max(most, k)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	spare, tol := n-c.K, 0
	for _, k := range counts {
		if k > spare {
			break
		}
		spare -= k
		tol++
	}
	maxPer := (c.N + max(min(poolSize, c.N), 1) - 1) / max(min(poolSize, c.N), 1)
	switch {
	case tol == 0:
		return AtRisk, 0
	case n < c.N || most > maxPer:
		return Degraded, tol
	}
	return Full, tol
}

// RepairObject is an object as a repair plan sees it.
type RepairObject struct {
	Root     cid.Cid
	Manifest *Manifest
	Layout   Layout
}

// RepairState is what the planner knows of the cluster.
type RepairState struct {
	// Live reports whether a node is up (heard from within the grace).
	Live func(id string) bool
	// Damaged reports whether a holder is known to lack, or hold a bad
	// copy of, a fragment (scrubber and audit reports).
	Damaged func(holder string, key []byte) bool
}

// BlockRepair is one block short of fragments on live holders.
type BlockRepair struct {
	Root   cid.Cid // an object that holds the block
	Block  cid.Cid
	Coding Coding
	// Holders[i] is the current holder of fragment i.
	Holders []string
	// Sources are the fragment indices believed present and valid.
	Sources []int
	// Missing are the indices to write now: their holder is live but
	// holds a bad copy or none, or received the index in a repair move
	// not yet done (it may have been written already: check first).
	Missing []int
	// Stranded are the indices whose holder is down: they come back with
	// the holder, or move when a repair epoch replaces it.
	Stranded []int
	Health   Health
	// Tolerance is how many holders the block can lose now.
	Tolerance int
	// Keys are the fragment keys, by index.
	Keys [][]byte
}

// Spare is how many more fragments the block can lose.
func (b *BlockRepair) Spare() int { return len(b.Sources) - b.Coding.K }

// RepairPlan is what the cluster needs: every block short of fragments,
// most at risk first, and counts of objects and blocks per health.
type RepairPlan struct {
	Blocks  []BlockRepair
	Objects HealthCounts
	Counted HealthCounts // distinct blocks
	// Assessed is each object's health (its worst block's), how many
	// holders it can lose now (its least tolerant block's) and how many
	// distinct holders its fragments are on.
	Assessed map[cid.Cid]ObjectAssessment
	// Fragments is how many fragments Missing names in all (the backlog).
	Fragments int
	// Crowded counts blocks with every fragment present but some node
	// holding more than its share (fewer live nodes than fragments).
	Crowded int
}

// ObjectAssessment is one object's state in a repair plan.
type ObjectAssessment struct {
	Health    Health
	Tolerance int
	Holders   int
	Blocks    int // leaves, repeats counted
}

// Tolerance is how many holders the cluster can lose now with every
// object still readable: the least tolerant object's; -1 with no
// dispersed object.
func (p *RepairPlan) Tolerance() int {
	tol := -1
	for _, a := range p.Assessed {
		if a.Holders > 0 && (tol < 0 || a.Tolerance < tol) {
			tol = a.Tolerance
		}
	}
	return tol
}

// PlanRepair assesses every block of every object and lists those that
// lack fragments, ordered most at risk first (fewest spare fragments),
// then by CID for a stable order. A block shared by objects with the same
// coding and holders is listed once.
func PlanRepair(objs []RepairObject, st RepairState) (RepairPlan, error) {
	plan := RepairPlan{Assessed: map[cid.Cid]ObjectAssessment{}}
	type seenBlock struct {
		health Health
		tol    int
	}
	seen := map[string]seenBlock{}
	for _, o := range objs {
		m := o.Manifest
		leaves, err := m.LeafCIDs()
		if err != nil {
			return plan, err
		}
		worst, tol, n := Full, m.Coding.N, m.Coding.N
		on := map[string]bool{}
		for _, leaf := range leaves {
			holders, kept := o.Layout.Holders(leaf, n)
			if holders == nil {
				continue // a single node's own content: nothing to place
			}
			for _, h := range holders {
				on[h] = true
			}
			id := string(leaf.Bytes()) + m.Coding.String() + strings.Join(holders, ",")
			if b, ok := seen[id]; ok {
				worst, tol = max(worst, b.health), min(tol, b.tol)
				continue
			}
			br := BlockRepair{Root: o.Root, Block: leaf, Coding: m.Coding, Holders: holders, Keys: make([][]byte, n)}
			present := make([]bool, n)
			for i, h := range holders {
				br.Keys[i] = FragmentKey(leaf, m.Coding, i)
				switch {
				case st.Live != nil && !st.Live(h):
					br.Stranded = append(br.Stranded, i)
				case st.Damaged != nil && st.Damaged(h, br.Keys[i]), kept != nil && kept[i] != nil:
					br.Missing = append(br.Missing, i)
				default:
					br.Sources = append(br.Sources, i)
					present[i] = true
				}
			}
			br.Health, br.Tolerance = Assess(m.Coding, holders, present, len(m.Pool))
			seen[id] = seenBlock{br.Health, br.Tolerance}
			plan.Counted.Add(br.Health)
			worst, tol = max(worst, br.Health), min(tol, br.Tolerance)
			if len(br.Missing)+len(br.Stranded) > 0 {
				plan.Fragments += len(br.Missing)
				plan.Blocks = append(plan.Blocks, br)
			} else if br.Health != Full {
				plan.Crowded++
			}
		}
		if len(on) == 0 {
			tol = 0 // stored whole on one node
		}
		plan.Assessed[o.Root] = ObjectAssessment{Health: worst, Tolerance: tol, Holders: len(on), Blocks: len(leaves)}
		plan.Objects.Add(worst)
	}
	sort.SliceStable(plan.Blocks, func(i, j int) bool {
		a, b := &plan.Blocks[i], &plan.Blocks[j]
		if a.Spare() != b.Spare() {
			return a.Spare() < b.Spare()
		}
		return bytes.Compare(a.Block.Bytes(), b.Block.Bytes()) < 0
	})
	return plan, nil
}

// Losses decides whether the nodes unheard for the grace are a loss to
// repair or a partition to wait out: more than a quarter of the storing
// nodes at once, or every storing node of a failure domain that has
// more than one, is a partition. storing maps each storing node to its
// failure domain; down lists those unheard for the grace.
func Losses(storing map[string]string, down []string) (partition bool, why string) {
	if len(down) == 0 {
		return false, ""
	}
	if 4*len(down) > len(storing) {
		return true, "more than a quarter of the storing nodes are unheard at once"
	}
	perDomain, downIn := map[string]int{}, map[string]int{}
	for id, d := range storing {
		if d != "" {
			perDomain[d]++
		}
		if contains(down, id) && d != "" {
			downIn[d]++
		}
	}
	if len(perDomain) > 1 {
		for d, n := range downIn {
			if n == perDomain[d] && n > 1 {
				return true, "every node of failure domain " + d + " is unheard"
			}
		}
	}
	return false, ""
}
