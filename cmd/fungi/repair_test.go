package main

// Self-healing on clusters of real daemons: repair restores full
// redundancy after losses so that a cluster survives one loss after
// another; the scrubber, audits and `fungi check` find damage that no
// read asked for; a repair survives its leader's death; orphan
// collection never deletes what a repair moved.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

// settings turns "key=value" pairs into testnet settings (values are
// strings unless they parse as JSON).
func settings(kv ...string) []testnet.Setting {
	var out []testnet.Setting
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		raw := json.RawMessage(v)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(v)
		}
		out = append(out, testnet.Setting{Key: k, Value: raw})
	}
	return out
}

// addObject writes size random bytes to a file in dir and adds it on
// node 1.
func (c *cluster) addObject(rng *rand.Rand, dir, name string, size int) *object {
	c.t.Helper()
	o := &object{name: name, path: filepath.Join(dir, name), data: randomBytes(rng, size)}
	if err := os.WriteFile(o.path, o.data, 0o644); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.api(1).Add(ctx, o.path, node.AddOptions{})
	if err != nil {
		c.t.Fatalf("add %s: %v", name, err)
	}
	o.root = res.Root
	return o
}

// repairState is node i's view of the content's health and the repair.
func (c *cluster) repairState(i int) (*node.RepairStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.api(i).RepairStatus(ctx)
}

// whole waits until node i sees every one of n objects at full
// redundancy with nothing left to repair.
func (c *cluster) whole(i, n int, limit time.Duration) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("node %d sees %d objects whole", i, n), limit, func() error {
		st, err := c.repairState(i)
		if err != nil {
			return err
		}
		if st.Objects.Full != n || st.Backlog != 0 || st.Pending != 0 || st.Stranded != 0 {
			return fmt.Errorf("objects %+v, backlog %d, stranded %d, pending epochs %d, lost %v, down %v, partition %q",
				st.Objects, st.Backlog, st.Stranded, st.Pending, st.Lost, st.Down, st.Partition)
		}
		return nil
	})
}

// layouts reads, from node i, where every block of root has its
// fragments: block CID -> holder of each index.
func (c *cluster) layouts(i int, root string) map[string][]string {
	c.t.Helper()
	st := c.statJSON(i, root)
	out := map[string][]string{}
	for _, l := range st.Layout {
		if !l.Inline { // a small leaf in the metadata has no fragments
			out[l.CID] = l.Holders
		}
	}
	return out
}

// spreadOnLive checks that every block of root has its N fragments on N
// distinct nodes, none of them dead, all present and valid (stat --verify
// from node i).
func (c *cluster) spreadOnLive(i int, root string, n int, dead []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := c.api(i).Stat(ctx, mustCID(c.t, root), true)
	if err != nil {
		return err
	}
	if len(st.Damaged) > 0 || len(st.Unreachable) > 0 || st.Health != "full" {
		return fmt.Errorf("%s: health %s, damaged %v, unreachable %v", root, st.Health, st.Damaged, st.Unreachable)
	}
	for _, l := range st.Layout {
		if l.Inline {
			continue // a small leaf in the metadata: no fragments to spread
		}
		seen := map[string]bool{}
		for idx, h := range l.Holders {
			if slices.Contains(dead, h) {
				return fmt.Errorf("block %s: fragment %d still on dead %s", l.CID, idx, c.nodeOf(h))
			}
			if seen[h] {
				return fmt.Errorf("block %s: %s holds two fragments", l.CID, c.nodeOf(h))
			}
			seen[h] = true
		}
		if len(l.Holders) != n || len(l.Missing) > 0 {
			return fmt.Errorf("block %s: %d holders, missing %v", l.CID, len(l.Holders), l.Missing)
		}
	}
	return nil
}

// repairDone reads the leader's repair counters.
func (c *cluster) repairDone(leader int) node.RepairState {
	c.t.Helper()
	st, err := c.repairState(leader)
	if err != nil {
		c.t.Fatal(err)
	}
	return st.Status
}

// gcAll runs orphan collection with no minimum age on the nodes.
func (c *cluster) gcAll(nodes []int) error {
	for _, i := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.api(i).GC(ctx, 0)
		cancel()
		if err != nil {
			return fmt.Errorf("gc on node %d: %w", i, err)
		}
	}
	return nil
}

// nonVoters are the nodes of from that are not raft voters (killing
// them never costs the cluster its quorum).
func (c *cluster) nonVoters(leader int, from []int) []int {
	c.t.Helper()
	st, err := c.status(leader)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []int
	for _, i := range from {
		if !slices.Contains(st.Voters, c.peerIDs([]int{i})[0]) {
			out = append(out, i)
		}
	}
	return out
}

// The scenario: 24 nodes at 16/4 with three objects. A node
// down for less than the grace costs no repair. Four holders SIGKILLed:
// every block is back to 20 fragments on 20 distinct live nodes, orphan
// collection everywhere deletes none of them, and a killed node that
// comes back has its surplus collected. Then four nodes that received
// repaired fragments are SIGKILLed too, a loss that without the repair
// would have been fatal for some block, and every object still reads
// byte-exact.
func TestRepair24(t *testing.T) {
	if testing.Short() {
		t.Skip("24 daemons")
	}
	began := time.Now()
	const n = 24
	c := upTestnet(t, testnet.Options{N: n, Coding: "16/4", Set: settings("repair.grace=8s", "repair.audit_interval=0")}, 4*time.Minute)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	dir := t.TempDir()
	var objs []*object
	for k, size := range []int{3<<20 + 1, 8 << 20, 100 << 10} {
		objs = append(objs, c.addObject(rng, dir, fmt.Sprintf("object%d", k), size))
	}
	leader := c.leader(others(n))
	t.Logf("leader: node %d", leader)
	c.whole(leader, len(objs), 30*time.Second)

	// a short outage: back within the grace, no repair
	short := pick(rng, c.nonVoters(leader, others(n)), 1)
	if err := testnet.Stop(c.dir, short, true); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the leader sees the node down", 20*time.Second, func() error {
		st, err := c.repairState(leader)
		if err != nil || len(st.Down) != 1 {
			return fmt.Errorf("down %v, %v", st, err)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := testnet.Start(ctx, c.dir, short)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c.whole(leader, len(objs), 30*time.Second)
	if d := c.repairDone(leader); d.Done.Fragments != 0 || d.Epochs != 0 {
		t.Fatalf("node %v back within the grace cost %d repaired fragments, %d epochs", short, d.Done.Fragments, d.Epochs)
	}

	original := map[string][]string{}
	for _, o := range objs {
		for b, hs := range c.layouts(leader, o.root) {
			original[b] = hs
		}
	}
	first := pick(rng, c.nonVoters(leader, others(n)), 4)
	firstIDs := c.peerIDs(first)
	t.Logf("SIGKILL nodes %v", first)
	if err := testnet.Stop(c.dir, first, true); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	live := others(n, first...)
	c.waitFor("every block back to 20 fragments on 20 distinct live nodes", 2*time.Minute, func() error {
		for _, o := range objs {
			if err := c.spreadOnLive(live[rng.IntN(len(live))], o.root, 20, firstIDs); err != nil {
				return err
			}
		}
		return nil
	})
	d := c.repairDone(leader)
	t.Logf("full redundancy again %v after the kill (grace 8s): %d blocks, %d fragments, %d bytes written, %d epochs (leader node %d)", time.Since(killed).Round(time.Millisecond),
		d.Done.Blocks, d.Done.Fragments, d.Done.Bytes, d.Epochs, c.leader(live))
	if d.Done.Fragments == 0 || d.Epochs != 1 {
		t.Fatalf("the leader's repair: %+v", d)
	}
	c.whole(live[0], len(objs), 20*time.Second)
	c.waitFor("the leader's metrics say so", 10*time.Second, func() error {
		full, frags := c.seriesValue(leader, `fungi_repair_objects{health="full"}`), c.seriesValue(leader, `fungi_repair_done_total{what="fragments"}`)
		if full != float64(len(objs)) || frags != float64(d.Done.Fragments) || c.seriesValue(leader, `fungi_repair_epochs{state="all"}`) != 1 {
			return fmt.Errorf("fungi_repair_objects{health=full} %v, fragments %v", full, frags)
		}
		return nil
	})

	// orphan collection everywhere keeps what the repair moved
	if err := c.gcAll(live); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := c.spreadOnLive(live[1], o.root, 20, firstIDs); err != nil {
			t.Fatalf("after orphan collection on every live node: %v", err)
		}
	}

	// a killed node back after the grace: its now surplus copies go
	back := first[:1]
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	err = testnet.Start(ctx, c.dir, back)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := c.fragments(back)
	if err != nil {
		t.Fatal(err)
	}
	if before[back[0]] == 0 {
		t.Fatalf("node %d came back with no fragments", back[0])
	}
	c.waitFor("the returned node collects its surplus", time.Minute, func() error {
		if err := c.gcAll(back); err != nil {
			return err
		}
		after, _, err := c.fragments(back)
		if err != nil || after[back[0]] != 0 {
			return fmt.Errorf("node %d holds %d fragments (had %d): %v", back[0], after[back[0]], before[back[0]], err)
		}
		return nil
	})
	t.Logf("node %d came back with %d fragments, all collected", back[0], before[back[0]])

	// the second loss: four nodes that received repaired fragments, a
	// loss fatal to some block had nothing been repaired
	current := map[string][]string{}
	for _, o := range objs {
		for b, hs := range c.layouts(leader, o.root) {
			current[b] = hs
		}
	}
	var receivers []int
	for _, i := range c.nonVoters(leader, others(n, first...)) {
		id := c.peerIDs([]int{i})[0]
		for b, hs := range current {
			if slices.Contains(hs, id) && !slices.Contains(original[b], id) {
				receivers = append(receivers, i)
				break
			}
		}
	}
	fatal := func(second []int) bool {
		gone := append(slices.Clone(firstIDs), c.peerIDs(second)...)
		for _, hs := range original {
			alive := 0
			for _, h := range hs {
				if !slices.Contains(gone, h) {
					alive++
				}
			}
			if alive < 16 {
				return true
			}
		}
		return false
	}
	var second []int
	for try := 0; try < 200 && second == nil; try++ {
		if len(receivers) < 4 {
			break
		}
		if s := pick(rng, receivers, 4); fatal(s) {
			second = s
		}
	}
	if second == nil {
		t.Fatalf("no four of the nodes that received repaired fragments (%v) make a loss fatal without repair", receivers)
	}
	t.Logf("SIGKILL nodes %v (received repaired fragments; with the first four, fatal without repair)", second)
	if err := testnet.Stop(c.dir, second, true); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		reader := others(n, append(append(slices.Clone(first[1:]), second...), leader)...)
		if err := c.readBack(reader[rng.IntN(len(reader))], o); err != nil {
			t.Fatalf("after the second loss: %v\n%s", err, logTail(c.dir, n))
		}
	}
	t.Logf("every object byte-exact after two losses of four; TestRepair24 took %v", time.Since(began).Round(time.Millisecond))
}

// debugPost posts to node i's debug API.
func (c *cluster) debugPost(i int, path string) []byte {
	c.t.Helper()
	resp, err := http.Post("http://"+c.st.Nodes[i-1].API+path, "", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("%s on node %d: %s %s", path, i, resp.Status, b.String())
	}
	return b.Bytes()
}

// scrubStat is node i's scrubber.
func (c *cluster) scrubStat(i int) node.ScrubStatus {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.api(i).RepoStat(ctx)
	if err != nil || st.Scrub == nil {
		c.t.Fatalf("repo stat of node %d: %+v %v", i, st, err)
	}
	return *st.Scrub
}

// checkClean runs fungi check --all on node i: every object whole.
func (c *cluster) checkClean(i int) error {
	r := c.fungiOn(i, nil, "check", "--all")
	if r.code != 0 {
		return fmt.Errorf("fungi check --all: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	return nil
}

// readers keeps reading objects on node i until stopped and fails the
// test on any wrong byte: no read may ever return wrong bytes, whatever
// rots meanwhile.
func (c *cluster) readers(i int, objs []*object) func() {
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	wg.Go(func() {
		for !stop.Load() {
			for _, o := range objs {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				got, err := catAll(ctx, c.api(i), o.root)
				cancel()
				if !bytes.HasPrefix(o.data, got) || err == nil && len(got) != len(o.data) {
					c.t.Errorf("a read of %s on node %d returned WRONG BYTES", o.name, i)
				}
				reads.Add(1)
			}
		}
	})
	return func() {
		stop.Store(true)
		wg.Wait()
		c.t.Logf("%d reads on node %d, every byte right", reads.Load(), i)
	}
}

// Bit rot, online and offline: the scrubber finds every corrupted
// fragment in one pass, deletes the bad copy and reports it; repair
// rewrites it in place; `fungi check` is clean afterwards, and reads
// never return wrong bytes meanwhile.
func TestRepairBitRot(t *testing.T) {
	if testing.Short() {
		t.Skip("8 daemons")
	}
	t.Setenv(node.DebugAPIEnv, "1")
	const n = 8
	c := upTestnet(t, testnet.Options{N: n, Coding: "4/2", Set: settings("repair.grace=30s", "repair.audit_interval=0", "repair.scrub_rate=64MB", "repair.scrub_interval=1s")}, 2*time.Minute)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x27d4eb2f))
	dir := t.TempDir()
	var objs []*object
	for k, size := range []int{6 << 20, 1<<20 + 7} {
		objs = append(objs, c.addObject(rng, dir, fmt.Sprintf("object%d", k), size))
	}
	leader := c.leader(others(n))
	c.whole(leader, len(objs), 30*time.Second)
	stop := c.readers(others(n, leader)[0], objs)
	defer stop()

	// online: bytes flipped through the store, only the tags tell
	victim := others(n, leader)[1]
	before := c.scrubStat(victim)
	var rot struct{ Keys []string }
	json.Unmarshal(c.debugPost(victim, "/api/v0/debug/rot?n=3"), &rot)
	if len(rot.Keys) != 3 {
		t.Fatalf("rot: %v", rot.Keys)
	}
	if c.seriesValue(victim, `fungi_scrub_total{what="passes"}`) == 0 {
		t.Fatal("no scrub pass in /metrics")
	}
	c.waitFor("one scrub pass finds the three", 30*time.Second, func() error {
		st := c.scrubStat(victim)
		if st.Passes < before.Passes+2 { // a pass that began after the rot
			return fmt.Errorf("passes %d", st.Passes)
		}
		if st.Corrupt-before.Corrupt != 3 {
			return fmt.Errorf("corrupt found %d", st.Corrupt-before.Corrupt)
		}
		return nil
	})
	c.waitFor("repair rewrites them; check is clean", 30*time.Second, func() error { return c.checkClean(leader) })
	c.waitFor("a later scrub pass finds nothing", 30*time.Second, func() error {
		if st := c.scrubStat(victim); st.LastCorrupt != 0 || st.LastMissing != 0 {
			return fmt.Errorf("scrub %+v", st)
		}
		return nil
	})
	if d := c.repairDone(leader); d.Epochs != 0 || d.Done.Fragments < 3 {
		t.Fatalf("in-place repair: %d epochs, %d fragments written", d.Epochs, d.Done.Fragments)
	}

	// offline: bytes flipped in the ZDB data files of a stopped node (the
	// one holding most)
	per, _, err := c.fragments(others(n, leader, victim))
	if err != nil {
		t.Fatal(err)
	}
	victim = 0
	for i, k := range per {
		if victim == 0 || k > per[victim] {
			victim = i
		}
	}
	if err := testnet.Stop(c.dir, []int{victim}, false); err != nil {
		t.Fatal(err)
	}
	flipped := 0
	filepath.WalkDir(filepath.Join(c.path(victim), "zdb", "data"), func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || flipped >= 3 {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return nil
		}
		defer f.Close()
		fi, _ := f.Stat()
		if fi.Size() < 64<<10 { // fragments are ~256 KiB here: a data file holding one
			return nil
		}
		for k := 0; k < 3; k++ {
			off := fi.Size()/4 + int64(k)*fi.Size()/5
			b := []byte{0}
			f.ReadAt(b, off)
			b[0] ^= 0x41
			f.WriteAt(b, off)
			flipped++
		}
		return nil
	})
	if flipped == 0 {
		t.Fatal("found no ZDB data file to flip bytes in")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = testnet.Start(ctx, c.dir, []int{victim})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the restarted node's scrubber finds the rot", 30*time.Second, func() error {
		if st := c.scrubStat(victim); st.Corrupt+st.Missing == 0 {
			return fmt.Errorf("scrub %+v", st)
		}
		return nil
	})
	c.waitFor("repair rewrites it; check is clean", 30*time.Second, func() error { return c.checkClean(leader) })
	t.Logf("offline rot: %+v", c.scrubStat(victim))
}

// A holder that says it has every fragment but keeps none is caught by
// audits and repaired around: its fragments move to other nodes.
func TestRepairAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("8 daemons")
	}
	t.Setenv(node.DebugAPIEnv, "1")
	const n = 8
	c := upTestnet(t, testnet.Options{N: n, Coding: "4/2", Set: settings("repair.grace=1h", "repair.audit_interval=1s",
		"repair.audit_sample=4", "repair.scrub_rate=0")}, 2*time.Minute)
	o := c.addObject(rand.New(rand.NewPCG(1, 2)), t.TempDir(), "object", 5<<20)
	leader := c.leader(others(n))
	c.whole(leader, 1, 30*time.Second)
	liar := others(n, leader)[0]
	liarID := c.peerIDs([]int{liar})[0]
	c.fault(liar, "drop", 0)
	c.waitFor("audits catch the liar and repair around it", time.Minute, func() error {
		st, err := c.repairState(leader)
		if err != nil {
			return err
		}
		failing := false
		for _, a := range st.Audits {
			failing = failing || a.ID == liarID && a.Failing
		}
		if !failing || !slices.Contains(st.Replaced, liarID) {
			return fmt.Errorf("audits %+v, replaced %v", st.Audits, st.Replaced)
		}
		return c.spreadOnLive(leader, o.root, 6, []string{liarID})
	})
	out := c.must(leader, "cluster", "status")
	if !strings.Contains(out, "FAILING AUDITS") {
		t.Fatalf("cluster status does not mark the liar:\n%s", out)
	}
	if err := c.readBack(others(n, leader, liar)[1], o); err != nil {
		t.Fatal(err)
	}
}

// The leader is SIGKILLed in the middle of a repair (slowed by its rate
// cap): the new leader finishes it, nothing is lost and no fragment is
// placed twice. Then bad input: an unknown CID, and a repair with too few
// live nodes for full redundancy, which repairs as far as it can and
// says what is left.
func TestRepairLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("8 daemons")
	}
	const n = 8
	c := upTestnet(t, testnet.Options{N: n, Coding: "4/2", Set: settings("repair.grace=4s", "repair.rate=3MB", "repair.audit_interval=0")}, 2*time.Minute)
	o := c.addObject(rand.New(rand.NewPCG(3, 4)), t.TempDir(), "object", 40<<20)
	blocks := 40 // 1 MiB chunks, distinct (random bytes)
	leader := c.leader(others(n))
	c.whole(leader, 1, 30*time.Second)
	lost := c.nonVoters(leader, others(n))[:1]
	if err := testnet.Stop(c.dir, lost, true); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the repair is under way", time.Minute, func() error {
		if d := c.repairDone(leader); d.Done.Fragments == 0 {
			return fmt.Errorf("nothing written yet (pending %d)", d.Pending)
		}
		return nil
	})
	d := c.repairDone(leader)
	if d.Backlog == 0 {
		t.Fatalf("the repair was not slow enough to interrupt: %+v", d)
	}
	t.Logf("SIGKILL the leader (node %d) after %d of its repair's fragments", leader, d.Done.Fragments)
	if err := testnet.Stop(c.dir, []int{leader}, true); err != nil {
		t.Fatal(err)
	}
	dead := append(slices.Clone(lost), leader)
	live := others(n, dead...)
	next := c.leader(live)
	deadIDs := c.peerIDs(dead)
	c.waitFor("the new leader finishes: 6 fragments on the 6 live nodes", 3*time.Minute, func() error {
		return c.spreadOnLive(next, o.root, 6, deadIDs)
	})
	c.whole(next, 1, 30*time.Second)
	if err := c.readBack(live[len(live)-1], o); err != nil {
		t.Fatal(err)
	}
	if err := c.gcAll(live); err != nil {
		t.Fatal(err)
	}
	_, total, err := c.fragments(live)
	if err != nil {
		t.Fatal(err)
	}
	if total != int64(blocks*6) {
		t.Fatalf("the live nodes hold %d fragments after gc, want %d blocks x 6: a fragment placed twice, or lost", total, blocks*6)
	}

	// bad input
	r := c.fungiOn(next, nil, "repair", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	oneLineError(t, "repair of an unknown CID", r, "not an object of this cluster")
	r = c.fungiOn(next, nil, "repair", "--all", "--quiet", "not-a-cid")
	if r.code != 2 {
		t.Fatalf("repair with bad arguments: exit %d %s", r.code, r.stderr)
	}
	// one more loss: five live nodes for six fragments per block
	third := c.nonVoters(next, others(n, append(slices.Clone(dead), next)...))[:1]
	if err := testnet.Stop(c.dir, third, true); err != nil {
		t.Fatal(err)
	}
	thirdID := c.peerIDs(third)[0]
	c.waitFor("the leader sees the third loss", 30*time.Second, func() error {
		st, err := c.repairState(next)
		if err != nil || !slices.Contains(st.Down, thirdID) {
			return fmt.Errorf("down %v: %v", st.Down, err)
		}
		return nil
	})
	out := c.must(next, "repair", "--all")
	t.Logf("fungi repair --all with five live nodes:\n%s", out)
	if !strings.Contains(out, "degraded") || !strings.Contains(out, "fewer live") {
		t.Fatalf("repair with too few live nodes does not say what is left:\n%s", out)
	}
	st := c.statJSON(next, o.root)
	for _, l := range st.Layout {
		if len(l.Missing) != 0 {
			t.Fatalf("block %s still misses %v after repairing as far as it can", l.CID, l.Missing)
		}
	}
	if err := c.readBack(next, o); err != nil {
		t.Fatal(err)
	}
}
