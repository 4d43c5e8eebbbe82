package consensus

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

var testSecret = []byte("the cluster secret")

// testNode is one member of a test cluster: a libp2p host on loopback, a
// Node, and what it takes to restart it from its Dir.
type testNode struct {
	key  crypto.PrivKey
	dir  string
	cfg  Config
	h    host.Host
	n    *Node
	down atomic.Bool
}

type testCluster struct {
	tb    testing.TB
	nodes []*testNode
}

func testLogger() *slog.Logger {
	if os.Getenv("CONSENSUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func authorize(secret []byte) func(peer.ID, []byte, []byte) bool {
	return func(p peer.ID, nonce, proof []byte) bool {
		return hmac.Equal(proof, JoinSecretProof(secret, nonce, p.String()))
	}
}

func testConfig(dir string) Config {
	return Config{
		Dir:              dir,
		HeartbeatTimeout: 300 * time.Millisecond,
		ElectionTimeout:  300 * time.Millisecond,
		PolicyInterval:   100 * time.Millisecond,
		Authorize:        authorize(testSecret),
		Logger:           testLogger(),
	}
}

func newHost(tb testing.TB, key crypto.PrivKey) host.Host {
	tb.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// newTestNode starts a node (not yet in any cluster).
func newTestNode(tb testing.TB, root string, i int, tweak func(*Config)) *testNode {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	tn := &testNode{key: key, dir: filepath.Join(root, fmt.Sprintf("node%d", i))}
	tn.cfg = testConfig(tn.dir)
	if tweak != nil {
		tweak(&tn.cfg)
	}
	tn.start(tb)
	return tn
}

func (tn *testNode) start(tb testing.TB) {
	tb.Helper()
	tn.h = newHost(tb, tn.key)
	n, err := New(tn.cfg, tn.h)
	if err != nil {
		tn.h.Close()
		tb.Fatal(err)
	}
	tn.n = n
	tn.down.Store(false)
}

// stop closes the node gracefully (a leader hands over first).
func (tn *testNode) stop() {
	if tn.down.Swap(true) {
		return
	}
	tn.n.Close()
	tn.h.Close()
}

// crash stops the node as a kill would: connections drop first, no
// leadership transfer.
func (tn *testNode) crash() {
	if tn.down.Swap(true) {
		return
	}
	tn.h.Close()
	tn.n.shutdown(false)
}

func (tn *testNode) info() peer.AddrInfo {
	return peer.AddrInfo{ID: tn.h.ID(), Addrs: tn.h.Addrs()}
}

// newCluster bootstraps node 0 and joins the others through it, then waits
// until the policy has made min(size, Voters) voters.
func newCluster(tb testing.TB, size int, tweak func(*Config)) *testCluster {
	tb.Helper()
	root := tb.TempDir()
	c := &testCluster{tb: tb}
	tb.Cleanup(c.close)
	for i := range size {
		c.nodes = append(c.nodes, newTestNode(tb, root, i, tweak))
	}
	first := c.nodes[0]
	if err := first.n.Bootstrap(); err != nil {
		tb.Fatal(err)
	}
	waitFor(tb, 10*time.Second, "first leader", func() bool { return first.n.IsLeader() && first.n.FSM().IsMember(first.n.cfg.LocalID) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tn := range c.nodes[1:] {
		if err := tn.n.Join(ctx, first.info(), testSecret); err != nil {
			tb.Fatalf("join: %v", err)
		}
	}
	voters := min(size, first.n.cfg.Voters)
	waitFor(tb, 20*time.Second, "voters promoted", func() bool {
		st := c.leader().n.Status()
		return len(st.Voters) == voters && len(st.Voters)+len(st.Nonvoters) == size
	})
	return c
}

func (c *testCluster) close() {
	var wg sync.WaitGroup
	for _, tn := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); tn.crash() }()
	}
	wg.Wait()
}

// leader returns the node that currently leads (waiting for one).
func (c *testCluster) leader() *testNode {
	c.tb.Helper()
	var l *testNode
	waitFor(c.tb, 15*time.Second, "a leader", func() bool {
		for _, tn := range c.nodes {
			if !tn.down.Load() && tn.n.IsLeader() {
				l = tn
				return true
			}
		}
		return false
	})
	return l
}

func (c *testCluster) followers() []*testNode {
	var out []*testNode
	for _, tn := range c.nodes {
		if !tn.down.Load() && !tn.n.IsLeader() {
			out = append(out, tn)
		}
	}
	return out
}

func (c *testCluster) up() []*testNode {
	var out []*testNode
	for _, tn := range c.nodes {
		if !tn.down.Load() {
			out = append(out, tn)
		}
	}
	return out
}

// converge waits until every running node has applied the leader's last
// index and holds the same state (background policy writes may land
// meanwhile, so it tries again until the states agree).
func (c *testCluster) converge() {
	c.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.tryConverge()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *testCluster) tryConverge() error {
	l := c.leader()
	// A barrier makes the leader's applied index cover every commit.
	if err := l.n.raft.Barrier(5 * time.Second).Error(); err != nil {
		return err
	}
	idx := l.n.FSM().AppliedIndex()
	for _, tn := range c.up() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tn.n.WaitApplied(ctx, idx)
		cancel()
		if err != nil {
			return fmt.Errorf("node %s did not reach index %d (at %d): %v", tn.h.ID(), idx, tn.n.FSM().AppliedIndex(), err)
		}
	}
	for _, tn := range c.up() {
		if tn == l {
			continue
		}
		if err := diffFSM(l.n.FSM(), tn.n.FSM(), false); err != nil {
			return fmt.Errorf("node %s differs from the leader: %w", tn.h.ID(), err)
		}
	}
	return nil
}

func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func apply(tb testing.TB, n *Node, cmd Command) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		tb.Fatalf("apply %s %s: %v", cmd.Op, cmd.Key, err)
	}
	return res
}

func TestClusterOfThree(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	st := l.n.Status()
	if st.Role != RoleLeader || st.Leader != l.h.ID().String() || len(st.Voters) != 3 || len(st.Nonvoters) != 0 {
		t.Fatalf("leader status = %+v", st)
	}
	for _, s := range st.Servers {
		if !s.Healthy {
			t.Errorf("server %s unhealthy on the leader: %+v", s.ID, s)
		}
	}
	for _, f := range c.followers() {
		waitFor(t, 5*time.Second, "followers see themselves as voters", func() bool {
			fs := f.n.Status()
			return fs.Role == RoleVoter && fs.Leader == st.Leader && len(fs.Voters) == 3
		})
	}
	// A write from each node; a follower reads its own write at once.
	for i, tn := range c.nodes {
		res := apply(t, tn.n, PutManifest(fmt.Sprintf("root%d", i), uint64(i), []byte("m")))
		if _, ok := tn.n.FSM().Manifest(fmt.Sprintf("root%d", i)); !ok {
			t.Errorf("node %d does not see its own write at index %d", i, res.Index)
		}
	}
	// A retry of an applied write, through another node, is recognised.
	cmd := AddUsage(l.h.ID().String(), 7)
	cmd.RequestID = NewRequestID()
	first := apply(t, c.nodes[1].n, cmd)
	again := apply(t, c.nodes[2].n, cmd)
	if first.Duplicate || !again.Duplicate || again.Index != first.Index {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	if m, _ := l.n.FSM().Member(l.h.ID().String()); m.Used != 7 {
		t.Fatalf("usage %d: the retry was applied", m.Used)
	}
	c.converge()
	// Every member is recorded, with its suffrage.
	waitFor(t, 5*time.Second, "Member.Voter recorded", func() bool {
		ms := l.n.FSM().Members()
		for _, m := range ms {
			if !m.Voter || len(m.Addrs) == 0 {
				return false
			}
		}
		return len(ms) == 3
	})
}

// A single node works alone and restarts from its Dir.
func TestSingleNodeRestart(t *testing.T) {
	tn := newTestNode(t, t.TempDir(), 0, func(cfg *Config) {
		cfg.SnapshotThreshold = 16
		cfg.SnapshotInterval = 20 * time.Millisecond
		cfg.TrailingLogs = 4
	})
	defer tn.crash()
	if err := tn.n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		apply(t, tn.n, Link(fmt.Sprintf("/f%d", i), "c"))
	}
	if err := tn.n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	apply(t, tn.n, Link("/after-snapshot", "c"))
	want := tn.n.FSM().Stats()
	tn.stop()
	tn.start(t)
	if err := tn.n.Bootstrap(); err != nil { // a no-op now
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leader again", tn.n.IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.n.WaitApplied(ctx, want.AppliedIndex); err != nil {
		t.Fatal(err)
	}
	got := tn.n.FSM().Stats()
	if got.Paths != 101 || got.Members != 1 || got.Commands < want.Commands {
		t.Fatalf("after restart %+v, before %+v", got, want)
	}
	st := tn.n.Status()
	if st.Role != RoleLeader || len(st.Voters) != 1 || st.AppliedIndex < want.AppliedIndex {
		t.Fatalf("status %+v", st)
	}
}

func TestFiveNodesThreeVoters(t *testing.T) {
	c := newCluster(t, 5, nil)
	l := c.leader()
	st := l.n.Status()
	if len(st.Voters) != 3 || len(st.Nonvoters) != 2 {
		t.Fatalf("voters %v, non-voters %v", st.Voters, st.Nonvoters)
	}
	// Writes from every node, concurrently: followers and non-voters forward.
	var wg sync.WaitGroup
	for i, tn := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				k := fmt.Sprintf("n%d-w%d", i, j)
				cmd := Batch(PutManifest(k, 1, []byte(k)), Pin(k), Link("/"+k, k))
				if _, err := tn.n.Apply(context.Background(), cmd); err != nil {
					t.Errorf("node %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.converge()
	for _, tn := range c.nodes {
		s := tn.n.FSM().Stats()
		if s.Manifests != 200 || s.Pins != 200 || s.Paths != 200 || s.Members != 5 {
			t.Fatalf("node %s: %+v", tn.h.ID(), s)
		}
	}
	nonvoter := c.nodes[0]
	for _, tn := range c.nodes {
		if tn.n.Status().Role == RoleNonvoter {
			nonvoter = tn
		}
	}
	if nonvoter.n.Status().Role != RoleNonvoter {
		t.Fatal("no non-voter found")
	}
	res := apply(t, nonvoter.n, Link("/from-nonvoter", "x"))
	if c, ok := nonvoter.n.FSM().Path("/from-nonvoter"); !ok || c != "x" {
		t.Fatalf("non-voter does not see its write at %d", res.Index)
	}
}

// TestLeaderCrashDuringWrites kills the leader while every node streams
// writes. Each write is Batch(PutManifest(k), AddUsage(counter, +1)) and is
// retried with the same RequestID until acknowledged, so at the end every
// write must be present exactly once: counter usage == manifests.
func TestLeaderCrashDuringWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	counter := c.nodes[0].h.ID().String()
	var (
		acked    sync.Map
		nacked   atomic.Int64
		retries  atomic.Int64
		unknowns atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tn := range c.nodes {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					if tn.down.Load() {
						return
					}
					k := fmt.Sprintf("n%d-g%d-w%d", i, w, j)
					cmd := Batch(PutManifest(k, 1, nil), AddUsage(counter, 1))
					cmd.RequestID = NewRequestID()
					for {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err := tn.n.Apply(ctx, cmd)
						cancel()
						if err == nil {
							acked.Store(k, true)
							nacked.Add(1)
							break
						}
						var ae *ApplyError
						if errors.As(err, &ae) && ae.Unknown {
							unknowns.Add(1)
						}
						if tn.down.Load() || errors.Is(err, ErrClosed) {
							return // this writer's node died: the write may or may not be in
						}
						retries.Add(1)
					}
				}
			}()
		}
	}
	time.Sleep(700 * time.Millisecond)
	old := c.leader()
	before := nacked.Load()
	killed := time.Now()
	old.crash()
	l := c.leader()
	elected := time.Since(killed)
	time.Sleep(1 * time.Second)
	close(stop)
	wg.Wait()
	c.converge()
	t.Logf("leader killed after %d acked writes; new leader in %v; %d acked in all, %d retries, %d unknown outcomes, %d duplicates recognised",
		before, elected.Round(time.Millisecond), nacked.Load(), retries.Load(), unknowns.Load(), l.n.FSM().Stats().Duplicates)
	if nacked.Load() <= before {
		t.Fatal("no write acknowledged after the leader died")
	}
	for _, tn := range c.up() {
		f := tn.n.FSM()
		acked.Range(func(k, _ any) bool {
			if _, ok := f.Manifest(k.(string)); !ok {
				t.Fatalf("acknowledged write %s missing on %s", k, tn.h.ID())
			}
			return true
		})
		m, _ := f.Member(counter)
		if s := f.Stats(); m.Used != uint64(s.Manifests) {
			t.Fatalf("node %s: counter %d != %d manifests: a write was applied twice or half", tn.h.ID(), m.Used, s.Manifests)
		}
	}
}

func TestRestartCatchesUp(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compact), func(t *testing.T) {
			c := newCluster(t, 3, func(cfg *Config) {
				if compact {
					cfg.SnapshotThreshold = 64
					cfg.SnapshotInterval = 50 * time.Millisecond
					cfg.TrailingLogs = 16
				}
			})
			l := c.leader()
			victim := c.followers()[0]
			for i := range 50 {
				apply(t, l.n, PutManifest(fmt.Sprintf("before%d", i), 1, []byte("x")))
			}
			c.converge()
			victim.stop()
			for i := range 300 {
				apply(t, c.leader().n, Batch(PutManifest(fmt.Sprintf("after%d", i), 2, []byte("y")), Link(fmt.Sprintf("/a/%d", i), "c")))
			}
			if compact {
				l := c.leader()
				if err := l.n.Snapshot(); err != nil {
					t.Fatal(err)
				}
				first, err := l.n.store.FirstIndex()
				if err != nil {
					t.Fatal(err)
				}
				stopped := victim.n.FSM().AppliedIndex()
				if first <= stopped+1 {
					t.Fatalf("log not compacted past the stopped node: first index %d, node at %d", first, stopped)
				}
				t.Logf("leader's log starts at %d, the stopped node is at %d: it must install a snapshot", first, stopped)
			}
			victim.start(t)
			// The node layer would dial its bootstrap peers; so do we.
			if err := victim.h.Connect(context.Background(), c.leader().info()); err != nil {
				t.Fatal(err)
			}
			c.converge()
			if s := victim.n.FSM().Stats(); s.Manifests != 350 || s.Paths != 301 { // 300 links in /a
				t.Fatalf("restarted node: %+v", s)
			}
			// It takes writes again, and publishes its new address.
			apply(t, victim.n, Pin("back"))
			waitFor(t, 10*time.Second, "new address published", func() bool {
				m, _ := c.leader().n.FSM().Member(victim.h.ID().String())
				return len(m.Addrs) > 0 && m.Addrs[0] == victim.h.Addrs()[0].String()
			})
		})
	}
}

func TestStrangerIsRefused(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	root := t.TempDir()
	stranger := newTestNode(t, root, 9, func(cfg *Config) { cfg.Authorize = authorize([]byte("wrong")) })
	defer stranger.crash()

	// Join with the wrong secret.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Join(ctx, stranger.h, l.info(), []byte("not the secret"))
	if !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("join with a wrong secret: %v", err)
	}
	if err := stranger.n.Join(ctx, c.followers()[0].info(), []byte("not the secret")); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("join through a follower with a wrong secret: %v", err)
	}
	// Forwarded writes from a non-member are refused.
	data, _ := encodeEntry([]Command{Link("/evil", "x")})
	if _, _, err := stranger.n.forward(ctx, l.h.ID(), data, 1); !errors.Is(err, ErrNotMember) {
		t.Fatalf("forward from a stranger: %v", err)
	}
	// Raft streams from a non-member are reset before raft sees them.
	refused := l.n.layer.refused.Load()
	s, err := stranger.h.NewStream(ctx, l.h.ID(), RaftProtocol)
	if err == nil {
		s.Write([]byte{0})
		s.Read(make([]byte, 1))
		s.Close()
	}
	waitFor(t, 5*time.Second, "raft stream refused", func() bool { return l.n.layer.refused.Load() > refused })
	// Nothing changed, the cluster still works.
	for _, tn := range c.nodes {
		if tn.n.FSM().IsMember(stranger.h.ID().String()) {
			t.Fatal("stranger became a member")
		}
		if _, ok := tn.n.FSM().Path("/evil"); ok {
			t.Fatal("stranger's write applied")
		}
	}
	apply(t, c.followers()[0].n, Link("/good", "y"))
	if st := l.n.Status(); len(st.Voters)+len(st.Nonvoters) != 3 {
		t.Fatalf("configuration changed: %+v", st)
	}
	// The right secret admits the same peer.
	if err := stranger.n.Join(ctx, l.info(), testSecret); err != nil {
		t.Fatal(err)
	}
	apply(t, stranger.n, Link("/welcome", "z"))
}

// TestPromotion: with 4 nodes and 3 voters, a voter that stays dead past
// DeadVoterGrace is demoted and the healthy non-voter promoted.
func TestPromotion(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.DeadVoterGrace = time.Second })
	l := c.leader()
	var victim, spare *testNode
	for _, tn := range c.followers() {
		switch tn.n.Status().Role {
		case RoleVoter:
			victim = tn
		case RoleNonvoter:
			spare = tn
		}
	}
	if victim == nil || spare == nil {
		t.Fatalf("status %+v", l.n.Status())
	}
	victim.crash()
	waitFor(t, 15*time.Second, "spare promoted", func() bool {
		st := c.leader().n.Status()
		return len(st.Voters) == 3 && contains(st.Voters, spare.h.ID().String()) && contains(st.Nonvoters, victim.h.ID().String())
	})
	waitFor(t, 5*time.Second, "suffrage recorded", func() bool {
		m, _ := c.leader().n.FSM().Member(spare.h.ID().String())
		v, _ := c.leader().n.FSM().Member(victim.h.ID().String())
		return m.Voter && !v.Voter
	})
	apply(t, spare.n, Pin("still-writable"))
	// Remove takes a member out of raft too.
	if err := spare.n.Remove(context.Background(), victim.h.ID().String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "removed", func() bool {
		st := c.leader().n.Status()
		return len(st.Voters)+len(st.Nonvoters) == 3 && !contains(st.Nonvoters, victim.h.ID().String())
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestConfigValidate(t *testing.T) {
	good := Config{Dir: "x"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{
		{},
		{Dir: "x", Voters: 4},
		{Dir: "x", Voters: 7},
		{Dir: "x", HeartbeatTimeout: time.Millisecond},
		{Dir: "x", HeartbeatTimeout: time.Second, ElectionTimeout: 500 * time.Millisecond},
		{Dir: "x", MaxBatch: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// Removing the leader itself: it steps down, the others elect a leader, and
// nobody readmits it.
func TestRemoveLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	id := old.h.ID().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := old.n.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	var l *testNode
	waitFor(t, 10*time.Second, "a new leader without the removed node", func() bool {
		for _, tn := range c.nodes {
			if tn != old && tn.n.IsLeader() {
				l = tn
				st := tn.n.Status()
				return len(st.Voters)+len(st.Nonvoters) == 2 && !contains(st.Voters, id)
			}
		}
		return false
	})
	apply(t, l.n, Pin("after-removal"))
	time.Sleep(500 * time.Millisecond) // a few policy rounds
	if st := l.n.Status(); len(st.Voters)+len(st.Nonvoters) != 2 || l.n.FSM().IsMember(id) {
		t.Fatalf("removed leader came back: %+v", st)
	}
	old.crash()
	c.converge()
}

// TestLeave: a follower and then the leader leave a five-node cluster; the
// three left keep three voters and a working log, and neither leaver is
// readmitted.
func TestLeave(t *testing.T) {
	c := newCluster(t, 5, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := c.followers()[0]
	if err := first.n.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	first.crash()
	old := c.leader()
	if err := old.n.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	old.crash()
	gone := []string{first.h.ID().String(), old.h.ID().String()}
	l := c.leader()
	waitFor(t, 15*time.Second, "three voters without the leavers", func() bool {
		st := l.n.Status()
		return len(st.Voters) == 3 && len(st.Nonvoters) == 0 && !contains(st.Voters, gone[0]) && !contains(st.Voters, gone[1])
	})
	apply(t, l.n, Pin("after-leave"))
	c.converge()
	for _, tn := range c.up() {
		if s := tn.n.FSM().Stats(); s.Members != 3 {
			t.Fatalf("members = %d", s.Members)
		}
	}
	alone := newCluster(t, 1, nil)
	if err := alone.nodes[0].n.Leave(ctx); !errors.Is(err, ErrAlone) {
		t.Fatalf("leave of a lone node: %v", err)
	}
}
