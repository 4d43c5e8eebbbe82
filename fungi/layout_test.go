package fungi

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func testBlocks(t testing.TB, n int) []cid.Cid {
	t.Helper()
	out := make([]cid.Cid, n)
	for i := range out {
		h, err := multihash.Sum([]byte(fmt.Sprint("block ", i)), multihash.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = cid.NewCidV1(cid.Raw, h)
	}
	return out
}

func testPool(n int, domains int) []PoolMember {
	out := make([]PoolMember, n)
	for i := range out {
		out[i].ID = fmt.Sprintf("node%02d", i)
		if domains > 0 {
			out[i].Domain = fmt.Sprintf("dc%d", i%domains)
		}
	}
	return out
}

func candidates(pool []PoolMember, free uint64) []Candidate {
	out := make([]Candidate, len(pool))
	for i, p := range pool {
		out[i] = Candidate{ID: p.ID, Domain: p.Domain, Free: free}
	}
	return out
}

func TestLayoutWithoutMovesIsSpread(t *testing.T) {
	pool := testPool(24, 0)
	l := Layout{Pool: pool}
	sp := Spread{}
	for _, p := range pool {
		sp.Pool = append(sp.Pool, Target{ID: p.ID})
	}
	for _, b := range testBlocks(t, 50) {
		want, _ := sp.Place(b, 20)
		got := l.Current(b, 20)
		for i := range want {
			if want[i].ID != got[i] {
				t.Fatalf("block %s index %d: layout %s, spread %s", b, i, got[i], want[i].ID)
			}
		}
	}
}

// After a move replacing 4 of 24 nodes, every block's 20 fragments sit on
// 20 distinct live nodes, unmoved fragments stay where they were, and the
// lost holders' copies are kept until the move is done.
func TestMoveReplacesLostHolders(t *testing.T) {
	pool := testPool(24, 0)
	lost := []string{"node03", "node07", "node11", "node19"}
	mv := Move{Seq: 1, Lost: lost, Pool: candidates(pool, 100<<30)}
	before := Layout{Pool: pool}
	after := Layout{Pool: pool, Moves: []Move{mv}}
	moved, received := 0, map[string]int{}
	for _, b := range testBlocks(t, 500) {
		old := before.Current(b, 20)
		cur, kept := after.Holders(b, 20)
		seen := map[string]bool{}
		for i, id := range cur {
			if slices.Contains(lost, id) {
				t.Fatalf("block %s: fragment %d still on lost %s", b, i, id)
			}
			if seen[id] {
				t.Fatalf("block %s: %s holds two fragments: %v", b, id, cur)
			}
			seen[id] = true
			if slices.Contains(lost, old[i]) {
				moved++
				received[id]++
				if len(kept[i]) != 1 || kept[i][0] != old[i] {
					t.Fatalf("block %s: fragment %d kept %v, want [%s]", b, i, kept[i], old[i])
				}
			} else if id != old[i] {
				t.Fatalf("block %s: fragment %d moved from live %s to %s", b, i, old[i], id)
			}
		}
	}
	if moved == 0 {
		t.Fatal("nothing moved")
	}
	// the moved fragments spread over the survivors
	if len(received) < 15 {
		t.Fatalf("moved fragments went to only %d nodes: %v", len(received), received)
	}
	mv.Done = true
	done := Layout{Pool: pool, Moves: []Move{mv}}
	for _, b := range testBlocks(t, 20) {
		if _, kept := done.Holders(b, 20); kept != nil {
			t.Fatalf("a done move keeps %v", kept)
		}
	}
}

// A small pool (5 nodes, 16/4: four fragments each) losing one node
// spreads its four fragments one each over the other four.
func TestMoveSmallPoolSpreadsEvenly(t *testing.T) {
	pool := testPool(5, 0)
	mv := Move{Seq: 1, Lost: []string{"node02"}, Pool: candidates(pool, 1<<30), Done: true}
	l := Layout{Pool: pool, Moves: []Move{mv}}
	for _, b := range testBlocks(t, 100) {
		per := map[string]int{}
		for _, id := range l.Current(b, 20) {
			per[id]++
		}
		if len(per) != 4 {
			t.Fatalf("block %s: holders %v", b, per)
		}
		for id, n := range per {
			if n != 5 {
				t.Fatalf("block %s: %s holds %d: %v", b, id, n, per)
			}
		}
	}
}

// Moves stack: a node that received fragments in one move and is lost in
// the next passes them on; a manifest sees only the moves given to it.
func TestMovesStack(t *testing.T) {
	pool := testPool(28, 0) // 20 left after two losses of 4
	m1 := Move{Seq: 1, Lost: []string{"node01", "node02", "node03", "node04"}, Pool: candidates(pool, 1<<30), Done: true}
	l1 := Layout{Pool: pool, Moves: []Move{m1}}
	b := testBlocks(t, 1)[0]
	cur1 := l1.Current(b, 20)
	// lose 4 nodes that received repaired fragments, if any
	var second []string
	orig := Layout{Pool: pool}.Current(b, 20)
	for i := range cur1 {
		if cur1[i] != orig[i] && len(second) < 4 {
			second = append(second, cur1[i])
		}
	}
	slices.Sort(second)
	var live []PoolMember // the second move's pool: the nodes up then
	for _, p := range pool {
		if !slices.Contains(m1.Lost, p.ID) {
			live = append(live, p)
		}
	}
	m2 := Move{Seq: 2, Lost: second, Pool: candidates(live, 1<<30)}
	l2 := Layout{Pool: pool, Moves: []Move{m1, m2}}
	cur2 := l2.Current(b, 20)
	seen := map[string]bool{}
	for _, id := range cur2 {
		if slices.Contains(second, id) || slices.Contains(m1.Lost, id) || seen[id] {
			t.Fatalf("after two moves: %v", cur2)
		}
		seen[id] = true
	}
}

// Free space weighs placement: a nearly full node receives far fewer
// moved fragments than the others.
func TestMoveWeighsFreeSpace(t *testing.T) {
	pool := testPool(40, 0) // 20 nodes hold nothing of a block: the choice is free
	cands := candidates(pool, 500<<30)
	cands[10].Free = 5 << 30
	mv := Move{Seq: 1, Lost: []string{"node00", "node01", "node02", "node03"}, Pool: cands}
	l := Layout{Pool: pool, Moves: []Move{mv}}
	got := map[string]int{}
	for _, b := range testBlocks(t, 2000) {
		old := Layout{Pool: pool}.Current(b, 20)
		for i, id := range l.Current(b, 20) {
			if id != old[i] {
				got[id]++
			}
		}
	}
	avg := 0
	for id, n := range got {
		if id != "node10" {
			avg += n
		}
	}
	avg /= max(len(got)-1, 1)
	if got["node10"]*4 > avg {
		t.Fatalf("a node with 1%% of the others' free space got %d moved fragments, the others %d on average", got["node10"], avg)
	}
}

// Failure domains: with three domains, a moved fragment goes to the
// domain holding the fewest fragments of the block.
func TestMoveRespectsDomains(t *testing.T) {
	pool := testPool(6, 3) // dc0: node00,node03; dc1: node01,node04; dc2: node02,node05
	mv := Move{Seq: 1, Lost: []string{"node00"}, Pool: candidates(pool, 1<<30)}
	l := Layout{Pool: pool, Moves: []Move{mv}}
	dom := map[string]string{}
	for _, p := range pool {
		dom[p.ID] = p.Domain
	}
	for _, b := range testBlocks(t, 50) {
		per := map[string]int{}
		for _, id := range l.Current(b, 6) {
			per[dom[id]]++
		}
		if per["dc0"] != 2 || per["dc1"] != 2 || per["dc2"] != 2 {
			t.Fatalf("block %s: per domain %v", b, per)
		}
	}
}

func TestAssess(t *testing.T) {
	c := Coding{K: 16, N: 20}
	ids := func(n int) []string {
		out := make([]string, 20)
		for i := range out {
			out[i] = fmt.Sprint("n", i%n)
		}
		return out
	}
	all := func(k int) []bool {
		out := make([]bool, 20)
		for i := range k {
			out[i] = true
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		holders []string
		present []bool
		pool    int
		want    Health
		tol     int
	}{
		{"whole", ids(20), all(20), 20, Full, 4},
		{"one missing", ids(20), all(19), 20, Degraded, 3},
		{"no spare", ids(20), all(16), 20, AtRisk, 0},
		{"lost", ids(20), all(15), 20, Lost, 0},
		{"five nodes whole", ids(5), all(20), 5, Full, 1},
		{"five nodes, one short", ids(5), all(19), 5, AtRisk, 0},
		{"doubled up", ids(16), all(20), 20, Degraded, 2},
	} {
		h, tol := Assess(c, tc.holders, tc.present, tc.pool)
		if h != tc.want || tol != tc.tol {
			t.Errorf("%s: %s tolerance %d, want %s %d", tc.name, h, tol, tc.want, tc.tol)
		}
	}
}

func TestPlanRepairOrdersMostAtRiskFirst(t *testing.T) {
	pool := testPool(20, 0)
	c := Coding{K: 16, N: 20}
	bl := testBlocks(t, 30)
	var objs []RepairObject
	for i := 0; i < 3; i++ {
		m := &Manifest{Root: bl[i], Coding: c, Imported: true, Pool: pool}
		for _, b := range bl[10*i : 10*i+10] {
			m.Dispersed = append(m.Dispersed, BlockRef{CID: b, Size: 100})
		}
		objs = append(objs, RepairObject{Root: bl[i], Manifest: m, Layout: Layout{Pool: pool}})
	}
	down := map[string]bool{"node05": true}
	// every block of object 2 lacks its fragments on node01..node03 too
	damaged := map[string]bool{}
	for _, b := range bl[20:30] {
		cur := objs[2].Layout.Current(b, 20)
		for i, id := range cur {
			if id == "node01" || id == "node02" || id == "node03" {
				damaged[id+string(FragmentKey(b, c, i))] = true
			}
		}
	}
	plan, err := PlanRepair(objs, RepairState{
		Live:    func(id string) bool { return !down[id] },
		Damaged: func(h string, k []byte) bool { return damaged[h+string(k)] },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Blocks) != 30 { // node05 holds a fragment of every block
		t.Fatalf("%d blocks to repair, want 30", len(plan.Blocks))
	}
	for i, b := range plan.Blocks {
		if i < 10 && (b.Spare() != 0 || b.Health != AtRisk || len(b.Missing) != 3) {
			t.Fatalf("block %d: spare %d health %s missing %v", i, b.Spare(), b.Health, b.Missing)
		}
		if i >= 10 && (b.Spare() != 3 || b.Health != Degraded || len(b.Stranded) != 1) {
			t.Fatalf("block %d: spare %d health %s stranded %v", i, b.Spare(), b.Health, b.Stranded)
		}
	}
	if plan.Objects != (HealthCounts{Degraded: 2, AtRisk: 1}) || plan.Fragments != 30 {
		t.Fatalf("objects %+v, backlog %d", plan.Objects, plan.Fragments)
	}
	// per object: health, holders it can lose now, where it is, its size
	for i, want := range []ObjectAssessment{
		{Health: Degraded, Tolerance: 3, Holders: 20, Blocks: 10},
		{Health: Degraded, Tolerance: 3, Holders: 20, Blocks: 10},
		{Health: AtRisk, Tolerance: 0, Holders: 20, Blocks: 10},
	} {
		if got := plan.Assessed[objs[i].Root]; got != want {
			t.Errorf("object %d: %+v, want %+v", i, got, want)
		}
	}
	if tol := plan.Tolerance(); tol != 0 {
		t.Errorf("the cluster can lose %d holders, want 0 (object 2 is at risk)", tol)
	}
	if empty := (RepairPlan{}); empty.Tolerance() != -1 {
		t.Errorf("with no object the tolerance is %d, want -1", empty.Tolerance())
	}
}

func TestLosses(t *testing.T) {
	storing := map[string]string{}
	for i := 0; i < 20; i++ {
		storing[fmt.Sprint("n", i)] = fmt.Sprint("dc", i%4)
	}
	if p, _ := Losses(storing, []string{"n1", "n2", "n3", "n4", "n5"}); p {
		t.Fatal("5 of 20 is not a partition")
	}
	if p, _ := Losses(storing, []string{"n1", "n2", "n3", "n4", "n5", "n6"}); !p {
		t.Fatal("6 of 20 is a partition")
	}
	if p, why := Losses(storing, []string{"n0", "n4", "n8", "n12", "n16"}); !p {
		t.Fatal("a whole domain down is a partition")
	} else {
		t.Log(why)
	}
}
