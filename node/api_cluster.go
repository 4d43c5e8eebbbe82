package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
)

// PromotionPolicy is what `fungi cluster status` says about voters.
const PromotionPolicy = "the leader keeps %d voters; a voter unheard-of for 30s is demoted when a healthy non-voter can replace it, and healthy non-voters are promoted (a new failure domain first, then the oldest member) while voters are missing"

// ClusterStatus is a node's view of the cluster.
type ClusterStatus struct {
	PeerID    string         `json:"peer_id"`
	Role      string         `json:"role"`
	Leader    string         `json:"leader"`
	Term      uint64         `json:"term"`
	Voters    []string       `json:"voters"`
	Nonvoters []string       `json:"nonvoters"`
	Applied   uint64         `json:"applied_index"`
	Servers   []ServerHealth `json:"servers"`
	Members   []MemberInfo   `json:"members"`
	Metadata  MetadataStats  `json:"metadata"`
	Policy    string         `json:"policy"`
	// Healthy: the leader answers and sees a majority of voters healthy.
	Healthy bool `json:"healthy"`
	// Repair is the content's health (objects full, degraded, at risk,
	// lost) and the repair's state; absent when it cannot be known.
	Repair *RepairStatus `json:"repair,omitempty"`
	// CanLose is what the cluster can lose now and still work.
	CanLose CanLose `json:"can_lose"`
	// HealthFrom says whose view the servers' health is: "leader" (it
	// hears from every server) or "local" (the leader did not answer; a
	// live connection counts as healthy).
	HealthFrom string `json:"health_from"`
}

// CanLose is what the cluster can lose now: Voters, healthy voters it
// can lose keeping a quorum; Nodes, holders with every object still
// readable (the least tolerant object's; -1 with no object or when the
// content's health is not known).
type CanLose struct {
	Voters int `json:"voters"`
	Nodes  int `json:"nodes"`
}

// ServerHealth is one raft server's health as this node sees it: the
// leader hears from every server; another node counts a server healthy
// while its libp2p connection to it is up.
type ServerHealth struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Healthy bool   `json:"healthy"`
	// LastContactMillis: milliseconds since raft traffic from it (-1: none
	// since this node started, or this node is not its leader).
	LastContactMillis int64   `json:"last_contact_ms"`
	RTTMillis         float64 `json:"rtt_ms"`
}

// MemberInfo is one member of the pool, from the replicated metadata.
type MemberInfo struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs"`
	Domain   string    `json:"domain"`
	Capacity uint64    `json:"capacity"`
	Used     uint64    `json:"used"`
	Voter    bool      `json:"voter"`
	Joined   time.Time `json:"joined"`
}

// MetadataStats counts the replicated metadata held on this node.
type MetadataStats struct {
	Members   int               `json:"members"`
	Manifests int               `json:"manifests"`
	Pins      int               `json:"pins"`
	Paths     int               `json:"paths"`
	IPNS      int               `json:"ipns_records"`
	Commands  uint64            `json:"commands"`
	Ops       map[string]uint64 `json:"ops"`
}

// clusterStatus: GET /api/v0/cluster/status[?local=true]; local skips
// asking the leader (the servers' health is then this node's view).
func (a *api) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.status(r.Context(), r.URL.Query().Get("local") == "true"))
	return nil
}

func (a *api) status(ctx context.Context, local bool) ClusterStatus {
	cn := a.cluster.node()
	st := cn.Status()
	out := ClusterStatus{PeerID: st.ID, Role: string(st.Role), Leader: st.Leader, Term: st.Term,
		Voters: orEmpty(st.Voters), Nonvoters: orEmpty(st.Nonvoters), Applied: st.AppliedIndex,
		Servers: []ServerHealth{}, Members: []MemberInfo{}, HealthFrom: "leader"}
	// only the leader hears from every server: take its view of their
	// health; without it, a live connection is the evidence
	servers := st.Servers
	leaderUp := false
	if p, err := peer.Decode(st.Leader); err == nil && !local {
		leaderUp = p == a.host.ID() || a.host.LibP2P().Network().Connectedness(p) == network.Connected
	}
	if !leaderUp && st.Role != consensus.RoleLeader {
		out.HealthFrom = "local"
	} else if ls, err := cn.LeaderStatus(ctx); err == nil {
		servers = ls.Servers
		out.Voters, out.Nonvoters = orEmpty(ls.Voters), orEmpty(ls.Nonvoters)
	} else if st.Role != consensus.RoleLeader {
		out.HealthFrom = "local"
	}
	rtt := map[string]float64{}
	for _, p := range a.host.Peers() {
		rtt[p.ID.String()] = float64(p.RTT.Microseconds()) / 1000
	}
	healthyVoters := 0
	for _, s := range servers {
		h := ServerHealth{ID: s.ID, Role: string(s.Role), Healthy: s.Healthy, LastContactMillis: -1, RTTMillis: rtt[s.ID]}
		if !s.LastContact.IsZero() {
			h.LastContactMillis = max(time.Since(s.LastContact).Milliseconds(), 0)
		}
		if out.HealthFrom == "local" && s.ID != st.ID {
			if p, err := peer.Decode(s.ID); err == nil {
				h.Healthy = a.host.LibP2P().Network().Connectedness(p) == network.Connected
			}
		}
		if h.Healthy && slices.Contains(out.Voters, s.ID) {
			healthyVoters++
		}
		out.Servers = append(out.Servers, h)
	}
	out.Healthy = st.Leader != "" && out.HealthFrom == "leader" && healthyVoters > len(out.Voters)/2
	for _, m := range cn.FSM().Members() {
		out.Members = append(out.Members, MemberInfo{ID: m.ID, Addrs: orEmpty(m.Addrs), Domain: m.Domain,
			Capacity: m.Capacity, Used: m.Used, Voter: m.Voter, Joined: m.Joined})
	}
	fs := cn.FSM().Stats()
	out.Metadata = MetadataStats{Members: fs.Members, Manifests: fs.Manifests, Pins: fs.Pins, Paths: fs.Paths,
		IPNS: fs.IPNSRecords, Commands: fs.Commands, Ops: fs.Ops}
	voters := a.repo.Config.Cluster.Voters
	if voters == 0 {
		voters = consensus.DefaultConfig().Voters
	}
	out.Policy = fmt.Sprintf(PromotionPolicy, voters)
	out.CanLose = CanLose{Voters: max(healthyVoters-(len(out.Voters)/2+1), 0), Nodes: -1}
	if !out.Healthy {
		out.CanLose.Voters = 0
	}
	if a.repairs != nil {
		if rs, err := a.repairHealth(ctx); err == nil {
			out.Repair = &rs
			out.CanLose.Nodes = rs.Tolerance
		}
	}
	return out
}

// join: POST /api/v0/cluster/join?arg=MULTIADDR[&secret=HEX][&force=true]
func (a *api) join(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	addr := q.Get("arg")
	if addr == "" {
		return badRequest("argument \"arg\" (the multiaddr of a cluster member, with /p2p/ID) is required")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	if err := a.cluster.Join(ctx, addr, q.Get("secret"), q.Get("force") == "true"); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.status(r.Context(), false))
	return nil
}

// leave: POST /api/v0/cluster/leave
func (a *api) leave(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	if err := a.cluster.Leave(ctx); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.status(r.Context(), false))
	return nil
}

// applyStatus maps a write's failure to an HTTP status: the cluster could
// not commit (no leader, no quorum) is 503.
func applyStatus(err error) error {
	var ae *consensus.ApplyError
	if errors.As(err, &ae) {
		return httpError{http.StatusServiceUnavailable, err}
	}
	if errors.Is(err, consensus.ErrInvalidCommand) {
		return httpError{http.StatusBadRequest, err}
	}
	return err
}

// PinResult is the answer of pin add and pin rm.
type PinResult struct {
	Pins  []string `json:"pins"`
	Index uint64   `json:"index"`
}

// pinChange: POST /api/v0/pin/add|rm?arg=CID[&arg=CID...]; several CIDs
// commit atomically in one batch.
func (a *api) pinChange(add bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		args := r.URL.Query()["arg"]
		if len(args) == 0 {
			return badRequest("argument \"arg\" (a CID) is required")
		}
		if len(args) > consensus.MaxBatchLen {
			return badRequest("at most %d CIDs per request", consensus.MaxBatchLen)
		}
		cids := make([]string, 0, len(args))
		for _, s := range args {
			c, err := ParseCID(s)
			if err != nil {
				return httpError{http.StatusBadRequest, err}
			}
			cids = append(cids, c.String())
		}
		if err := a.cluster.ready(); err != nil {
			return err
		}
		cn := a.cluster.node()
		cmds := make([]consensus.Command, 0, len(cids))
		out := PinResult{Pins: cids}
		var missing []cid.Cid
		for _, c := range cids {
			if add {
				if _, ok := cn.FSM().Manifest(c); !ok {
					// not in the cluster: fetched from IPFS peers
					missing = append(missing, cid.MustParse(c))
					continue
				}
				cmds = append(cmds, consensus.Pin(c))
			} else {
				if !cn.FSM().Pinned(c) {
					return httpError{http.StatusNotFound, fmt.Errorf("%s is not pinned", c)}
				}
				cmds = append(cmds, consensus.Unpin(c))
			}
		}
		if len(missing) > 0 {
			return a.pinIngest(w, r, missing, cmds, &out)
		}
		idx, err := a.applyPins(r.Context(), cmds)
		if err != nil {
			return err
		}
		out.Index = idx
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// applyPins commits pin changes atomically, in one batch.
func (a *api) applyPins(ctx context.Context, cmds []consensus.Command) (uint64, error) {
	if len(cmds) == 0 {
		return 0, nil
	}
	cmd := cmds[0]
	if len(cmds) > 1 {
		cmd = consensus.Batch(cmds...)
	}
	res, err := a.cluster.node().Apply(ctx, cmd)
	if err != nil {
		return 0, applyStatus(err)
	}
	return res.Index, nil
}

// pinLs: GET /api/v0/pin/ls
func (a *api) pinLs(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, orEmpty(a.cluster.node().FSM().Pins()))
	return nil
}

// commitManifest records a new object in the cluster's metadata: its
// manifest, pinned, in one atomic write through the leader.
func (c *clusterRunner) commitManifest(ctx context.Context, m *fungi.Manifest) (uint64, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if err := c.ready(); err != nil {
		return 0, err
	}
	root := m.Root.String()
	res, err := c.node().Apply(ctx, consensus.Batch(consensus.PutManifest(root, m.Size, b), consensus.Pin(root)))
	return res.Index, applyStatus(err)
}

// commitManifests records the manifests of one DAG import and pins roots,
// all in one atomic write through the leader: readers see every manifest
// of the import or none. With nothing to write it returns the index this
// node has applied.
func (c *clusterRunner) commitManifests(ctx context.Context, ms []*fungi.Manifest, pins []cid.Cid) (uint64, error) {
	if err := c.ready(); err != nil {
		return 0, err
	}
	cmds := make([]consensus.Command, 0, len(ms)+len(pins))
	total := 0
	for _, m := range ms {
		b, err := m.MarshalBinary()
		if err != nil {
			return 0, err
		}
		total += len(b)
		cmds = append(cmds, consensus.PutManifest(m.Root.String(), m.Size, b))
	}
	for _, p := range pins {
		cmds = append(cmds, consensus.Pin(p.String()))
	}
	if len(cmds) == 0 {
		return c.node().FSM().AppliedIndex(), nil
	}
	if len(cmds) > consensus.MaxBatchLen || total > consensus.MaxEntrySize-(1<<20) {
		return 0, httpError{http.StatusBadRequest, fmt.Errorf("%w: %d manifests of %d bytes in all; one import commits at most %d MiB (split the CAR)",
			fungi.ErrImportTooLarge, len(ms), total, (consensus.MaxEntrySize-(1<<20))>>20)}
	}
	cmd := cmds[0]
	if len(cmds) > 1 {
		cmd = consensus.Batch(cmds...)
	}
	res, err := c.node().Apply(ctx, cmd)
	return res.Index, applyStatus(err)
}

// DebugAPIEnv, set to 1 in a daemon's environment, turns on
// /api/v0/debug/*: fault injection and measurement for tests and
// benchmarks (cut this node off from peers, force a raft snapshot, time
// synthetic commits). Never set it in production.
const DebugAPIEnv = "FUNGI_DEBUG_API"

// block: POST /api/v0/debug/block|unblock?arg=PEERID...
func (a *api) block(on bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		var ids []peer.ID
		for _, s := range r.URL.Query()["arg"] {
			p, err := peer.Decode(s)
			if err != nil {
				return badRequest("bad peer id %q: %v", s, err)
			}
			ids = append(ids, p)
		}
		if on {
			a.host.Block(ids...)
		} else {
			a.host.Unblock(ids...)
		}
		out := []string{}
		for _, p := range a.host.Blocked() {
			out = append(out, p.String())
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func (a *api) handleCluster() {
	a.handle("GET /api/v0/cluster/status", a.clusterStatus)
	a.handle("POST /api/v0/cluster/join", a.join)
	a.handle("POST /api/v0/cluster/leave", a.leave)
	a.handle("POST /api/v0/pin/add", a.pinChange(true))
	a.handle("POST /api/v0/pin/rm", a.pinChange(false))
	a.handle("GET /api/v0/pin/ls", a.pinLs)
	a.handle("GET /api/v0/repo/stat", a.repoStat)
	a.handle("POST /api/v0/repo/gc", a.gc)
	a.contentMetrics()
	if os.Getenv(DebugAPIEnv) == "1" {
		a.handle("POST /api/v0/debug/block", a.block(true))
		a.handle("POST /api/v0/debug/unblock", a.block(false))
		a.handle("POST /api/v0/debug/snapshot", a.snapshot)
		a.handle("POST /api/v0/debug/fault", a.fault)
		a.handle("POST /api/v0/debug/rot", a.rot)
		a.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		a.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		a.handle("POST /api/v0/debug/commit-bench", a.commitBench)
	}
}

// snapshot: POST /api/v0/debug/snapshot: raft snapshots now and compacts
// its log (down to cluster.trailing_logs entries).
func (a *api) snapshot(w http.ResponseWriter, _ *http.Request) error {
	if err := a.cluster.node().Snapshot(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"applied_index": a.cluster.node().FSM().AppliedIndex()})
	return nil
}

// CommitBench is the answer of /api/v0/debug/commit-bench.
type CommitBench struct {
	Commits     int     `json:"commits"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	Entries     uint64  `json:"log_entries"`
}

// commitBench: POST /api/v0/debug/commit-bench?n=N&concurrency=C commits N
// synthetic manifests (about 200 bytes, as for a 1 MiB file) from this
// node with C writers through the normal write path (forwarded to the
// leader when this node is not it), then deletes them again.
func (a *api) commitBench(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	conc, _ := strconv.Atoi(q.Get("concurrency"))
	if n <= 0 || n > 10_000_000 || conc <= 0 || conc > 4096 {
		return badRequest("want n in 1..10000000 and concurrency in 1..4096")
	}
	cn := a.cluster.node()
	tag := consensus.NewRequestID().String()[:8]
	data := make([]byte, 200)
	key := func(i int) string { return fmt.Sprintf("bench-%s-%d", tag, i) }
	before := cn.FSM().AppliedIndex()
	var next atomic.Int64
	var firstErr atomic.Value
	run := func(mk func(i int) consensus.Command) time.Duration {
		next.Store(0)
		start := time.Now()
		var wg sync.WaitGroup
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n || r.Context().Err() != nil {
						return
					}
					if _, err := cn.Apply(r.Context(), mk(i)); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	took := run(func(i int) consensus.Command { return consensus.PutManifest(key(i), 1<<20, data) })
	entries := cn.FSM().AppliedIndex() - before
	run(func(i int) consensus.Command { return consensus.DeleteManifest(key(i)) })
	if err, _ := firstErr.Load().(error); err != nil {
		return applyStatus(err)
	}
	writeJSON(w, http.StatusOK, CommitBench{Commits: n, Concurrency: conc, Seconds: took.Seconds(),
		PerSecond: float64(n) / took.Seconds(), Entries: entries})
	return nil
}

// ErrNotJoined: a write on a node that has not been admitted to a cluster.
var ErrNotJoined = errors.New("this node is not in a cluster yet: it is still asking its bootstrap peers to admit it (see the daemon's log; fungi cluster join)")

// ready fails fast when this node is in no cluster at all, instead of
// letting a write wait for a leader that will never come.
func (c *clusterRunner) ready() error {
	if st := c.node().Status(); st.Role == consensus.RoleNone && st.Leader == "" {
		return httpError{http.StatusServiceUnavailable, ErrNotJoined}
	}
	return nil
}
