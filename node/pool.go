package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/p2p"
)

// minFree is the free space a member must have left to receive new
// fragments.
const minFree = 64 << 20

// ErrPoolChanged: a storage node failed during an add. It is left out of
// the next adds for a while, so sending the add again succeeds.
var ErrPoolChanged = errors.New("a storage node failed during the add (the next add leaves it out; retry)")

// suspectFor is how long a node whose fragment put failed is left out of
// new adds' pools.
const suspectFor = 30 * time.Second

// ErrNoPool: no member can take new fragments.
var ErrNoPool = errors.New("no storage node can take new content (all down, full or no_store)")

// clusterContent is how a daemon's repo reaches the pool: where new
// content goes (the leader picks the pool), where a manifest's fragments
// are, and the cluster's manifests.
type clusterContent struct {
	host    *p2p.Host
	cluster *clusterRunner
	repo    *Repo
	log     *slog.Logger
	self    string
	lat     *fungi.Latency

	// inflight counts, per block, the adds in progress on this node that
	// stored (or are storing) its fragments. mu also serialises the
	// clean-up of a failed add against new adds admitting blocks.
	mu       sync.Mutex
	inflight map[cid.Cid]int

	idxMu sync.Mutex
	idxAt uint64             // FSM applied index the index was built at
	inner map[cid.Cid]string // inner node -> root of its object

	resolveMu sync.Mutex
	resolving map[peer.ID]*sync.Mutex

	// remotes keeps each member's store by its id string: a placement
	// names 20 holders per block, and decoding their ids each time was
	// a third of what stat of a large object cost
	remotes sync.Map // string -> *remoteStore

	// onFetch and onBad hear of every fragment a read fetched or failed to
	// (metrics); set before the daemon serves.
	onFetch func(holder string)
	onBad   func(holder string, block cid.Cid, index int, err error)

	badMu     sync.Mutex
	badLogged map[string]time.Time

	suspectMu sync.Mutex
	suspects  map[string]time.Time // member -> when a put to it failed

	// lastRead is when a foreground read last fetched a fragment here
	// (unix ns): repair yields to it.
	lastRead atomic.Int64
}

// suspect leaves a member out of new pools for suspectFor.
func (cc *clusterContent) suspect(id string) {
	cc.suspectMu.Lock()
	cc.suspects[id] = time.Now()
	cc.suspectMu.Unlock()
}

func (cc *clusterContent) suspected(id string) bool {
	cc.suspectMu.Lock()
	defer cc.suspectMu.Unlock()
	at, ok := cc.suspects[id]
	if ok && time.Since(at) > suspectFor {
		delete(cc.suspects, id)
		ok = false
	}
	return ok
}

// putTracker marks a member suspect when a put to it fails, and counts
// such failures for the add it serves.
type putTracker struct {
	fungi.FragmentStore
	cc     *clusterContent
	id     string
	failed *atomic.Int32
}

func (t putTracker) PutFragment(ctx context.Context, key, data []byte) error {
	err := t.FragmentStore.PutFragment(ctx, key, data)
	if err != nil && ctx.Err() == nil {
		t.cc.suspect(t.id)
		t.failed.Add(1)
	}
	return err
}

func (t putTracker) PutFragments(ctx context.Context, keys, values [][]byte) error {
	err := fungi.PutFragments(ctx, t.FragmentStore, keys, values)
	if err != nil && ctx.Err() == nil {
		t.cc.suspect(t.id)
		t.failed.Add(1)
	}
	return err
}

func (t putTracker) DeleteFragment(ctx context.Context, key []byte) error {
	if d, ok := t.FragmentStore.(fungi.FragmentDeleter); ok {
		return d.DeleteFragment(ctx, key)
	}
	return nil
}

// bad reports a holder that failed to deliver a valid fragment.
func (cc *clusterContent) bad(holder string, block cid.Cid, index int, err error) {
	cc.badMu.Lock()
	last := cc.badLogged[holder]
	quiet := time.Since(last) < 10*time.Second
	if !quiet {
		cc.badLogged[holder] = time.Now()
	}
	cc.badMu.Unlock()
	if !quiet { // at most one line per holder every 10 s
		cc.log.Warn("read: a holder failed to deliver a valid fragment (read went on with others)", "holder", holder, "block", block.String(), "index", index, "err", err)
	}
	if cc.onBad != nil {
		cc.onBad(holder, block, index, err)
	}
}

func newClusterContent(repo *Repo, host *p2p.Host, cluster *clusterRunner, log *slog.Logger) *clusterContent {
	cc := &clusterContent{host: host, cluster: cluster, repo: repo, log: log, self: host.ID().String(),
		lat: fungi.NewLatency(), inflight: map[cid.Cid]int{}, resolving: map[peer.ID]*sync.Mutex{},
		badLogged: map[string]time.Time{}, suspects: map[string]time.Time{}}
	// a holder never read from ranks by its libp2p RTT (pings)
	cc.lat.Prior = func(id string) (time.Duration, bool) {
		if id == cc.self || id == "local" {
			return 0, true
		}
		p, err := peer.Decode(id)
		if err != nil {
			return 0, false
		}
		return host.RTT(p)
	}
	return cc
}

func (cc *clusterContent) fsm() *consensus.FSM { return cc.cluster.node().FSM() }

// store returns the fragment store of a pool member.
func (cc *clusterContent) store(id string) fungi.FragmentStore {
	if id == cc.self || id == "local" {
		return cc.repo.local()
	}
	if s, ok := cc.remotes.Load(id); ok {
		return s.(*remoteStore)
	}
	p, err := peer.Decode(id)
	if err != nil {
		return nil
	}
	s, _ := cc.remotes.LoadOrStore(id, &remoteStore{FragmentClient: cc.host.FragmentPeer(p), cc: cc, p: p})
	return s.(*remoteStore)
}

// placement is where a manifest's fragments are, from this node: its
// layout (the add's spread and the repair moves since), the one answer
// reads, stat, audits, the scrubber, repair and orphan collection share.
func (cc *clusterContent) placement(m *fungi.Manifest) fungi.Layout {
	return fungi.LayoutOf(m, cc.moves(m.Epoch), cc.store)
}

// moves are the repair epochs after the first epoch of them, as the
// layout takes them.
func (cc *clusterContent) moves(after uint64) []fungi.Move {
	return movesAfter(cc.fsm().Epochs(), after)
}

// movesAfter converts the epochs after the first epoch of them.
func movesAfter(epochs []consensus.Epoch, after uint64) []fungi.Move {
	var out []fungi.Move
	for _, e := range epochs {
		if e.Seq <= after {
			continue
		}
		mv := fungi.Move{Seq: e.Seq, Lost: e.Lost, Done: e.Done}
		for _, c := range e.Pool {
			mv.Pool = append(mv.Pool, fungi.Candidate{ID: c.ID, Domain: c.Domain, Free: c.Free})
		}
		out = append(out, mv)
	}
	return out
}

// placeNew picks the pool for new content: every member that stores
// (not no_store), has room, and that this node (the leader: it hears from
// every server) heard from lately. Members are ordered by ID; Spread
// then places each block on distinct nodes, across failure domains.
func (cc *clusterContent) placeNew(failed *atomic.Int32) (fungi.Spread, []string, error) {
	cn := cc.cluster.node()
	members := cn.FSM().Members()
	if len(members) == 0 { // a node alone that never admitted anyone
		if cc.repo.Config.Cluster.NoStore {
			return fungi.Spread{}, nil, ErrNoPool
		}
		return fungi.Spread{Pool: []fungi.Target{{ID: cc.self, Domain: cc.repo.Config.Cluster.Domain, Store: cc.repo.local()}}}, nil, nil
	}
	healthy := map[string]bool{}
	for _, s := range cn.Status().Servers {
		healthy[s.ID] = s.Healthy
	}
	net := cc.host.LibP2P().Network()
	var sp fungi.Spread
	var left []string
	for _, m := range members {
		why := ""
		switch {
		case m.Capacity == 0:
			why = "stores nothing"
		case m.ID != cc.self && (!healthy[m.ID] || cc.suspected(m.ID) || !connected(net, m.ID)):
			why = "down"
		case m.Used+minFree > m.Capacity:
			why = "full"
		}
		if why != "" {
			left = append(left, m.ID+" ("+why+")")
			continue
		}
		sp.Pool = append(sp.Pool, fungi.Target{ID: m.ID, Domain: m.Domain,
			Store: putTracker{FragmentStore: cc.store(m.ID), cc: cc, id: m.ID, failed: failed}})
	}
	if len(sp.Pool) == 0 {
		return sp, left, ErrNoPool
	}
	return sp, left, nil
}

// connected reports whether this host has a live connection to id (the
// leader is connected to every member it heard from; a killed node's TCP
// connections close at once).
func connected(n network.Network, id string) bool {
	p, err := peer.Decode(id)
	return err == nil && n.Connectedness(p) == network.Connected
}

// admit marks a block as being written by an add on this node.
func (cc *clusterContent) admit(c cid.Cid) error {
	cc.mu.Lock()
	cc.inflight[c]++
	cc.mu.Unlock()
	return nil
}

// release forgets an add's blocks (it committed or failed).
func (cc *clusterContent) releaseLocked(blocks []cid.Cid) {
	for _, c := range blocks {
		if cc.inflight[c]--; cc.inflight[c] <= 0 {
			delete(cc.inflight, c)
		}
	}
}

func (cc *clusterContent) release(blocks []cid.Cid) {
	cc.mu.Lock()
	cc.releaseLocked(blocks)
	cc.mu.Unlock()
}

// cleanup deletes the fragments a failed add stored, except those of
// blocks another object (committed, or being added) uses too. New adds
// wait while it runs, so none can count on a fragment it deletes. A put
// the add sent just before it failed may reach its holder after the
// delete (the exchange runs several streams per peer): a second pass a
// few seconds later deletes what such puts left, under the same rules.
func (cc *clusterContent) cleanup(place fungi.Placement, coding fungi.Coding, blocks []cid.Cid) {
	cc.mu.Lock()
	cc.releaseLocked(blocks)
	cc.mu.Unlock()
	n, err := cc.deleteUnused(place, coding, blocks)
	if err != nil {
		cc.log.Warn("add failed; some fragments are left to the orphan collector", "deleted", n, "err", err)
		return
	}
	cc.log.Info("add failed; deleted its fragments", "blocks", len(blocks), "fragments", n)
	time.AfterFunc(cleanupAgain, func() {
		n, err := cc.deleteUnused(place, coding, blocks)
		if err != nil {
			cc.log.Warn("add failed; the clean-up's second pass left fragments to the orphan collector", "deleted", n, "err", err)
			return
		}
		cc.log.Debug("add failed; clean-up's second pass", "fragments", n)
	})
}

// cleanupAgain is when a failed add's clean-up runs its second pass.
const cleanupAgain = 3 * time.Second

// deleteUnused deletes the fragments of the blocks that no known object
// uses and no add in flight is storing, holding the lock new adds wait on.
func (cc *clusterContent) deleteUnused(place fungi.Placement, coding fungi.Coding, blocks []cid.Cid) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	used, err := cc.referencedLeaves(ctx)
	if err != nil {
		return 0, err
	}
	var orphans []cid.Cid
	for _, c := range blocks {
		if !used[c] && cc.inflight[c] == 0 {
			orphans = append(orphans, c)
		}
	}
	return fungi.DeleteBlocks(ctx, place, coding, orphans)
}

// manifests returns every manifest this node knows: the cluster's and the
// repo's own (added before it joined).
func (cc *clusterContent) manifests(ctx context.Context) ([]*fungi.Manifest, error) {
	var raw [][]byte
	var epochs []uint64
	cc.fsm().RangeManifests(func(m consensus.Manifest) bool {
		raw = append(raw, m.Data)
		epochs = append(epochs, m.Epoch)
		return true
	})
	out, err := decodeManifests(raw)
	if err != nil {
		return nil, err
	}
	for i, m := range out {
		m.Epoch = epochs[i]
	}
	local, err := cc.repo.localManifests(ctx)
	return append(out, local...), err
}

// referencedLeaves is every leaf some known object uses.
func (cc *clusterContent) referencedLeaves(ctx context.Context) (map[cid.Cid]bool, error) {
	ms, err := cc.manifests(ctx)
	if err != nil {
		return nil, err
	}
	used := map[cid.Cid]bool{}
	for _, m := range ms {
		leaves, err := m.LeafCIDs()
		if err != nil {
			return nil, err
		}
		for _, l := range leaves {
			used[l] = true
		}
	}
	return used, nil
}

// manifest finds the cluster manifest holding c: its own or that of the
// object c is an inner node of. A follower that does not know c first
// catches up with the leader (an add on another node may have committed a
// moment ago).
func (cc *clusterContent) manifest(ctx context.Context, c cid.Cid) (*fungi.Manifest, bool, error) {
	for attempt := 0; ; attempt++ {
		fsm := cc.fsm()
		m, ok := fsm.Manifest(c.String())
		if !ok {
			if root, found := cc.innerRoot(c); found {
				m, ok = fsm.Manifest(root)
			}
		}
		if ok {
			fm := &fungi.Manifest{}
			if err := fm.UnmarshalBinary(m.Data); err != nil {
				return nil, false, fmt.Errorf("manifest of %s: %w", m.Root, err)
			}
			fm.Epoch = m.Epoch
			return fm, true, nil
		}
		if attempt > 0 {
			return nil, false, nil
		}
		// look again even when catchUp waited for nothing: the manifest
		// may have been applied since the look above
		cc.catchUp(ctx)
	}
}

// catchUp waits (briefly) until this node has applied what the leader has
// committed; false if there was nothing to wait for or it could not.
func (cc *clusterContent) catchUp(ctx context.Context) bool {
	cn := cc.cluster.node()
	if cn.IsLeader() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := cn.LeaderStatus(ctx)
	if err != nil || st.CommitIndex <= cn.FSM().AppliedIndex() {
		return false
	}
	return cn.WaitApplied(ctx, st.CommitIndex) == nil
}

// innerRoot finds the object an inner node (a directory or a file's
// internal node) belongs to, through an index rebuilt when the cluster's
// metadata changed.
func (cc *clusterContent) innerRoot(c cid.Cid) (string, bool) {
	if c.Prefix().Codec == cid.Raw {
		return "", false
	}
	cc.idxMu.Lock()
	defer cc.idxMu.Unlock()
	fsm := cc.fsm()
	if at := fsm.AppliedIndex(); cc.inner == nil || at != cc.idxAt {
		idx := map[cid.Cid]string{}
		fsm.RangeManifests(func(m consensus.Manifest) bool {
			fm := &fungi.Manifest{}
			if fm.UnmarshalBinary(m.Data) == nil {
				for n := range fm.Nodes {
					idx[n] = m.Root
				}
			}
			return true
		})
		cc.inner, cc.idxAt = idx, at
	}
	root, ok := cc.inner[c]
	return root, ok
}

// commit records a new object through raft and returns the log index it
// was applied at; then announces it in the DHT (in the background).
func (cc *clusterContent) commit(ctx context.Context, m *fungi.Manifest) (uint64, error) {
	idx, err := cc.cluster.commitManifest(ctx, m)
	if err != nil {
		return 0, err
	}
	go func() {
		ctx, cancel := context.WithTimeout(cc.cluster.ctx, 30*time.Second)
		defer cancel()
		if err := cc.host.Provide(ctx, m.Root); err != nil {
			cc.log.Debug("announce in the DHT", "root", m.Root.String(), "err", err)
		}
	}()
	return idx, nil
}

// resolve makes sure this host can dial p: addresses from the peerstore,
// else from p's member record, else from the DHT.
func (cc *clusterContent) resolve(ctx context.Context, p peer.ID) {
	lh := cc.host.LibP2P()
	if lh.Network().Connectedness(p) == network.Connected || len(lh.Peerstore().Addrs(p)) > 0 {
		return
	}
	cc.resolveMu.Lock()
	mu := cc.resolving[p]
	if mu == nil {
		mu = &sync.Mutex{}
		cc.resolving[p] = mu
	}
	cc.resolveMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(lh.Peerstore().Addrs(p)) > 0 {
		return
	}
	if m, ok := cc.fsm().Member(p.String()); ok {
		for _, a := range m.Addrs {
			if ma, err := multiaddr.NewMultiaddr(a); err == nil {
				lh.Peerstore().AddAddr(p, ma, time.Hour)
			}
		}
		if len(lh.Peerstore().Addrs(p)) > 0 {
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if ai, err := cc.host.FindPeer(ctx, p); err == nil {
		lh.Peerstore().AddAddrs(p, ai.Addrs, time.Hour)
	}
}

// remoteStore is a pool member's ZDB through the fragment exchange.
type remoteStore struct {
	*p2p.FragmentClient
	cc *clusterContent
	p  peer.ID
}

func (s *remoteStore) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.GetFragment(ctx, key)
}

func (s *remoteStore) GetFragmentPooled(ctx context.Context, key []byte) ([]byte, func(), error) {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.GetFragmentPooled(ctx, key)
}

func (s *remoteStore) HasFragment(ctx context.Context, key []byte) (bool, error) {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.HasFragment(ctx, key)
}

func (s *remoteStore) PutFragment(ctx context.Context, key, data []byte) error {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.PutFragment(ctx, key, data)
}

func (s *remoteStore) PutFragments(ctx context.Context, keys, values [][]byte) error {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.PutFragments(ctx, keys, values)
}

func (s *remoteStore) DeleteFragment(ctx context.Context, key []byte) error {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.DeleteFragment(ctx, key)
}

// GCResult is what an orphan collection did.
type GCResult struct {
	Scanned int   `json:"scanned"`
	Deleted int   `json:"deleted"`
	Bytes   int64 `json:"bytes"`
	Kept    int   `json:"kept_young"` // unreferenced but younger than the minimum age
}

// ErrNotCaughtUp: orphan collection needs this node to know every object.
var ErrNotCaughtUp = errors.New("this node is not caught up with the cluster's metadata; not collecting")

// collectOrphans deletes the fragments in this node's ZDB that no object
// references, if they are older than minAge (younger ones may belong to an
// add still in progress somewhere).
func (cc *clusterContent) collectOrphans(ctx context.Context, minAge time.Duration) (GCResult, error) {
	var res GCResult
	cn := cc.cluster.node()
	if !cn.IsLeader() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cn.LeaderStatus(sctx)
		if err == nil {
			err = cn.WaitApplied(sctx, st.CommitIndex)
		}
		cancel()
		if err != nil {
			return res, fmt.Errorf("%w: %v", ErrNotCaughtUp, err)
		}
	}
	ms, err := cc.manifests(ctx)
	if err != nil {
		return res, err
	}
	epochs := cc.fsm().Epochs()
	// keep what some object places on this node: a fragment of a used
	// block that sits elsewhere (an add retried over another pool after
	// its leader died) is an orphan too
	keep := map[string]bool{}
	for _, m := range ms {
		leaves, err := m.LeafCIDs()
		if err != nil {
			return res, err
		}
		// the layout names the holders after repairs, and keeps the copies
		// of replaced holders until the repair that replaced them is done
		place := fungi.LayoutOf(m, movesAfter(epochs, m.Epoch), nil)
		for _, l := range leaves {
			cur, kept := place.Holders(l, m.Coding.N)
			for i := range m.Coding.N {
				mine := cur == nil || cur[i] == cc.self || cur[i] == "local"
				if kept != nil {
					mine = mine || slices.Contains(kept[i], cc.self)
				}
				if mine {
					keep[string(fungi.FragmentKey(l, m.Coding, i))] = true
				}
			}
		}
	}
	cc.mu.Lock()
	inflight := len(cc.inflight)
	cc.mu.Unlock()
	if inflight > 0 && minAge < time.Minute {
		minAge = time.Minute // adds run here: leave their fragments be
	}
	cutoff := uint32(time.Now().Add(-minAge).Unix())
	ns := cc.repo.frags
	var cursor []byte
	for {
		items, next, err := ns.Scan(cursor, 1024, false)
		if err != nil {
			return res, err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			res.Scanned++
			if keep[string(it.Key)] {
				continue
			}
			if minAge > 0 && it.Time > cutoff {
				res.Kept++
				continue
			}
			if err := ns.Del(ctx, it.Key); err != nil {
				return res, err
			}
			res.Deleted++
			res.Bytes += int64(it.Size)
		}
		cursor = next
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// orphanLoop collects orphans now and then.
func (cc *clusterContent) orphanLoop(ctx context.Context, age time.Duration) {
	ticks(ctx, max(age/4, time.Minute), func() bool {
		res, err := cc.collectOrphans(ctx, age)
		switch {
		case err != nil:
			cc.log.Debug("orphan collection", "err", err)
		case res.Deleted > 0:
			cc.log.Info("orphan collection", "deleted", res.Deleted, "bytes", res.Bytes)
		}
		return true
	})
}

// describeLeft says which members an add left out of its pool.
func describeLeft(left []string) string {
	if len(left) == 0 {
		return ""
	}
	sort.Strings(left)
	return "not placed on: " + strings.Join(left, ", ")
}

func (s *remoteStore) HasFragments(ctx context.Context, keys [][]byte) ([]bool, []error) {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.HasFragments(ctx, keys)
}

func (s *remoteStore) GetFragments(ctx context.Context, keys [][]byte) ([][]byte, []error) {
	s.cc.resolve(ctx, s.p)
	return s.FragmentClient.GetFragments(ctx, keys)
}
