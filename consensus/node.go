package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.etcd.io/bbolt"
)

// Config configures a Node. The zero value of every field but Dir means
// its default (DefaultConfig); New fills them in.
type Config struct {
	// Dir holds raft's log and stable store (raft.db) and its snapshots.
	Dir string
	// LocalID is this node's raft server id. It must be the host's peer id
	// (raft addresses are peer ids); empty means that.
	LocalID string
	// Voters is how many voters the leader's policy keeps: 3 (default) or
	// 5, or 1 for a group that never promotes.
	Voters int
	// HeartbeatTimeout: a follower that hears nothing from the leader for
	// this long (randomised up to twice) starts an election. Default 500ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout bounds one election round (randomised up to twice).
	// Default 500ms. With both defaults a new leader is in place ~1-2 s
	// after the old one dies on a LAN.
	ElectionTimeout time.Duration
	// SnapshotThreshold is how many new log entries trigger a snapshot
	// (checked every SnapshotInterval). Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold. Default 30s.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log, so a
	// briefly absent follower catches up from the log and not a snapshot.
	// Default 10240.
	TrailingLogs uint64
	// DeadVoterGrace: a voter the leader has not heard from for this long
	// is demoted when a healthy non-voter can take its place. Default 30s.
	DeadVoterGrace time.Duration
	// PolicyInterval is how often the leader runs its membership policy
	// (it also runs on every membership change). Default 1s.
	PolicyInterval time.Duration
	// ApplyTimeout bounds an Apply whose context has no deadline, retries
	// included. Default 15s.
	ApplyTimeout time.Duration
	// MaxBatch is the most commands grouped into one log entry. Default 1024.
	MaxBatch int
	// Authorize admits a peer through the join protocol: proof must be
	// JoinSecretProof(secret, nonce, peer.String()) for the cluster secret.
	// Nil refuses every join.
	Authorize func(p peer.ID, nonce, proof []byte) bool
	// Logger receives the node's and raft's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for everything but Dir.
func DefaultConfig() Config {
	return Config{
		Voters:            3,
		HeartbeatTimeout:  500 * time.Millisecond,
		ElectionTimeout:   500 * time.Millisecond,
		SnapshotThreshold: 8192,
		SnapshotInterval:  30 * time.Second,
		TrailingLogs:      10240,
		DeadVoterGrace:    30 * time.Second,
		PolicyInterval:    time.Second,
		ApplyTimeout:      15 * time.Second,
		MaxBatch:          1024,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Voters == 0 {
		c.Voters = d.Voters
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = max(d.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.DeadVoterGrace == 0 {
		c.DeadVoterGrace = d.DeadVoterGrace
	}
	if c.PolicyInterval == 0 {
		c.PolicyInterval = d.PolicyInterval
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return errors.New("consensus: Config.Dir is empty")
	case c.Voters != 1 && c.Voters != 3 && c.Voters != 5:
		return fmt.Errorf("consensus: Config.Voters is %d: use 3 or 5 (or 1)", c.Voters)
	case c.HeartbeatTimeout < 10*time.Millisecond:
		return fmt.Errorf("consensus: Config.HeartbeatTimeout %v is below 10ms", c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("consensus: Config.ElectionTimeout %v is below HeartbeatTimeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.SnapshotInterval < 10*time.Millisecond:
		return fmt.Errorf("consensus: Config.SnapshotInterval %v is below 10ms", c.SnapshotInterval)
	case c.DeadVoterGrace < 0, c.PolicyInterval < 0, c.ApplyTimeout < 0:
		return errors.New("consensus: negative duration in Config")
	case c.MaxBatch < 1 || c.MaxBatch > MaxBatchLen:
		return fmt.Errorf("consensus: Config.MaxBatch %d out of 1..%d", c.MaxBatch, MaxBatchLen)
	}
	return nil
}

// Errors of the Node. Apply wraps the retryable ones in *ApplyError.
var (
	// ErrNoLeader: no leader is known (an election is running, or this
	// node has not joined a cluster).
	ErrNoLeader = errors.New("consensus: no leader")
	// ErrNotLeader: the operation must run on the leader (see *NotLeaderError).
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrNotMember: the leader refused a forwarded write because this peer
	// is not a member of the cluster. Permanent until it joins.
	ErrNotMember = errors.New("consensus: not a cluster member")
	// ErrJoinRefused: the join protocol refused the proof of the secret.
	ErrJoinRefused = errors.New("consensus: join refused (wrong cluster secret?)")
	// ErrClosed: the Node was closed.
	ErrClosed = errors.New("consensus: node closed")
)

// NotLeaderError says which node is the leader when an operation must run
// there. errors.Is(err, ErrNotLeader) holds.
type NotLeaderError struct {
	Leader string // peer id of the leader; "" when none is known
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "consensus: not the leader, and no leader is known"
	}
	return "consensus: not the leader; the leader is " + e.Leader
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ApplyError is the error of an Apply that could not be confirmed.
type ApplyError struct {
	RequestID RequestID
	// Leader is the peer id of the last leader tried ("" if none was known).
	Leader string
	// Attempts made (forwards or local proposals).
	Attempts int
	// Unknown: the write reached a leader at least once and its fate is
	// unknown: it may still be committed. Retrying the same Command (same
	// RequestID) is safe: it is applied at most once. When Unknown is
	// false, nothing was written.
	Unknown bool
	// Err is the last cause: ErrNoLeader, *NotLeaderError, ErrClosed, a
	// transport or raft error, or the context's error.
	Err error
}

func (e *ApplyError) Error() string {
	s := fmt.Sprintf("consensus: write %s not confirmed after %d attempts", e.RequestID, e.Attempts)
	if e.Leader != "" {
		s += " (leader " + e.Leader + ")"
	}
	if e.Unknown {
		s += ", it may still commit (retry with the same request id)"
	}
	return s + ": " + e.Err.Error()
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Node is one member of the raft group: it owns the raft instance, its
// stores, the FSM, the libp2p protocols of forwarding and joining, and the
// leader's membership policy. Its methods are safe for concurrent use.
type Node struct {
	cfg     Config
	h       host.Host
	id      peer.ID
	log     *slog.Logger
	fsm     *FSM
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	layer   *streamLayer
	store   *raftboltdb.BoltStore
	contact *contactTable

	proposals chan *proposal
	kick      chan struct{} // wakes the policy loop
	obsCh     chan raft.Observation
	observer  *raft.Observer

	leaderMu sync.Mutex
	leaderCh chan struct{} // closed and replaced when the leader changes

	trustMu sync.RWMutex
	trusted map[peer.ID]bool                 // peers this node joins through
	servers atomic.Pointer[map[peer.ID]bool] // the latest raft configuration

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the raft state in cfg.Dir and starts a raft
// member speaking over h. A new node is idle until Bootstrap (the first
// node of a cluster) or Join (every other one); a node with state in Dir
// resumes its cluster.
func New(cfg Config, h host.Host) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LocalID == "" {
		cfg.LocalID = h.ID().String()
	}
	if cfg.LocalID != h.ID().String() {
		return nil, fmt.Errorf("consensus: Config.LocalID %s is not the host's peer id %s", cfg.LocalID, h.ID())
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	n := &Node{
		cfg:       cfg,
		h:         h,
		id:        h.ID(),
		log:       cfg.Logger.With("component", "consensus"),
		fsm:       NewFSM(),
		contact:   newContactTable(),
		proposals: make(chan *proposal, 4*cfg.MaxBatch),
		kick:      make(chan struct{}, 1),
		obsCh:     make(chan raft.Observation, 64),
		leaderCh:  make(chan struct{}),
		trusted:   make(map[peer.ID]bool),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	hclogger := newHCLogger(cfg.Logger.With("component", "raft"))

	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true},
	})
	if err != nil {
		return nil, fmt.Errorf("consensus: open %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	n.store = store
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("consensus: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hclogger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("consensus: snapshots in %s: %w", cfg.Dir, err)
	}
	n.layer = newStreamLayer(h, n.allowRaft, n.learnAddrs, n.contact)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: peerIDAddresses{},
		Logger:                hclogger,
		Stream:                n.layer,
		MaxPool:               4,
		Timeout:               10 * time.Second,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.LocalID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.CommitTimeout = min(20*time.Millisecond, cfg.HeartbeatTimeout/10)
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.Logger = hclogger
	r, err := raft.NewRaft(rc, n.fsm, logs, store, snaps, n.trans)
	if err != nil {
		n.layer.Close()
		n.trans.Close()
		store.Close()
		return nil, fmt.Errorf("consensus: start raft: %w", err)
	}
	n.raft = r
	n.refreshServers()
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)

	h.SetStreamHandler(ForwardProtocol, n.handleForward)
	h.SetStreamHandler(JoinProtocol, n.handleJoin)
	h.SetStreamHandler(StatusProtocol, n.handleStatus)
	for range proposers {
		n.wg.Add(1)
		go n.proposer()
	}
	n.wg.Add(2)
	go n.observe()
	go n.policyLoop()
	return n, nil
}

// peerIDAddresses: a server's raft address is its id, a peer id.
type peerIDAddresses struct{}

func (peerIDAddresses) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	return raft.ServerAddress(id), nil
}

// Bootstrap makes this node the first voter of a new cluster; it becomes
// leader and admits itself as a member. It does nothing on a node that
// already has raft state (so a restarted first node can call it again).
func (n *Node) Bootstrap() error {
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.LocalID), Address: raft.ServerAddress(n.cfg.LocalID),
	}}}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consensus: bootstrap: %w", err)
	}
	n.refreshServers()
	return nil
}

// FSM returns the local replica of the state, for reads. It may lag the
// leader by the replication delay; Apply waits for its own writes, and
// WaitApplied waits for any index.
func (n *Node) FSM() *FSM { return n.fsm }

// ID is this node's peer id.
func (n *Node) ID() peer.ID { return n.id }

// Leader returns the leader's peer id, or "" when none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// WaitApplied blocks until the local FSM has applied index (a Result's
// Index, say) or ctx ends.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	for {
		applied, ch := n.fsm.appliedWatch()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrClosed
		}
	}
}

// Snapshot makes raft take a snapshot now (and compact its log).
func (n *Node) Snapshot() error {
	err := n.wait(n.ctx, n.raft.Snapshot())
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return err
}

// Close leaves the cluster's work to the others: a leader first hands its
// leadership to a voter (so writes pause for one round trip rather than an
// election), then raft stops and the stores close. The node stays a
// member; Remove it to take it out of the cluster.
func (n *Node) Close() error { return n.shutdown(true) }

// shutdown stops the node; without transfer a leader just stops, as if it
// crashed (tests use that).
func (n *Node) shutdown(transfer bool) error {
	n.closeOnce.Do(func() {
		n.h.RemoveStreamHandler(ForwardProtocol)
		n.h.RemoveStreamHandler(JoinProtocol)
		n.h.RemoveStreamHandler(StatusProtocol)
		if transfer && n.raft.State() == raft.Leader && n.hasOtherVoter() {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Debug("leadership transfer on close", "err", err)
			}
		}
		n.cancel()
		n.raft.DeregisterObserver(n.observer)
		err := n.raft.Shutdown().Error()
		n.wg.Wait()
		n.layer.Close()
		n.closeErr = errors.Join(err, n.trans.Close(), n.store.Close())
	})
	return n.closeErr
}

func (n *Node) hasOtherVoter() bool {
	cfg, err := n.configuration()
	if err != nil {
		return false
	}
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter && s.ID != raft.ServerID(n.cfg.LocalID) {
			return true
		}
	}
	return false
}

func (n *Node) configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, err
	}
	return f.Configuration(), nil
}

// refreshServers caches the raft configuration's servers for allowRaft.
func (n *Node) refreshServers() {
	cfg, err := n.configuration()
	if err != nil {
		return
	}
	m := make(map[peer.ID]bool, len(cfg.Servers))
	for _, s := range cfg.Servers {
		if p, err := peer.Decode(string(s.ID)); err == nil {
			m[p] = true
		}
	}
	n.servers.Store(&m)
}

// allowRaft decides whether p may open raft streams to this node.
func (n *Node) allowRaft(p peer.ID) bool {
	if s := n.servers.Load(); s != nil && (*s)[p] {
		return true
	}
	n.trustMu.RLock()
	ok := n.trusted[p]
	n.trustMu.RUnlock()
	return ok || n.fsm.IsMember(p.String())
}

func (n *Node) trust(p peer.ID) {
	n.trustMu.Lock()
	n.trusted[p] = true
	n.trustMu.Unlock()
}

// observe turns raft observations into leader-change broadcasts, policy
// kicks and configuration refreshes.
func (n *Node) observe() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case o := <-n.obsCh:
			switch d := o.Data.(type) {
			case raft.LeaderObservation:
				n.leaderMu.Lock()
				close(n.leaderCh)
				n.leaderCh = make(chan struct{})
				n.leaderMu.Unlock()
				n.log.Debug("leader changed", "leader", d.LeaderID)
			case raft.PeerObservation:
				n.refreshServers()
			}
			n.kickPolicy()
		}
	}
}

// leaderChanged returns a channel closed at the next leader change.
func (n *Node) leaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderCh
}

func (n *Node) kickPolicy() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Role is a node's part in the raft group.
type Role string

// The roles.
const (
	RoleLeader    Role = "leader"
	RoleVoter     Role = "voter"    // a follower with a vote
	RoleNonvoter  Role = "nonvoter" // replicates the log, never votes
	RoleCandidate Role = "candidate"
	RoleNone      Role = "none" // not (yet) in the configuration: not joined
	RoleShutdown  Role = "shutdown"
)

// ServerStatus is one server of the raft configuration as this node sees it.
type ServerStatus struct {
	ID   string
	Role Role // leader, voter or nonvoter
	// LastContact is when this node last received raft traffic from the
	// server (zero: not since it started). The leader hears from every
	// server several times per HeartbeatTimeout; a follower only from the
	// leader, so ask the leader for everyone's health.
	LastContact time.Time
	// Healthy: this node itself, or heard from within 2×HeartbeatTimeout.
	Healthy bool
}

// Status is a node's view of the cluster.
type Status struct {
	ID           string
	Role         Role
	Leader       string // "" when none is known
	Term         uint64
	Voters       []string
	Nonvoters    []string
	LastIndex    uint64 // last raft log index stored here
	CommitIndex  uint64
	AppliedIndex uint64 // applied to the local FSM
	Servers      []ServerStatus
}

// Status reports this node's view of the cluster.
func (n *Node) Status() Status {
	st := Status{
		ID:           n.cfg.LocalID,
		Leader:       n.Leader(),
		Term:         n.raft.CurrentTerm(),
		LastIndex:    n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),
	}
	cfg, _ := n.configuration()
	now := time.Now()
	self := raft.ServerID(n.cfg.LocalID)
	st.Role = RoleNone
	for _, s := range cfg.Servers {
		ss := ServerStatus{ID: string(s.ID), Role: RoleNonvoter}
		if s.Suffrage == raft.Voter {
			ss.Role = RoleVoter
			st.Voters = append(st.Voters, ss.ID)
		} else {
			st.Nonvoters = append(st.Nonvoters, ss.ID)
		}
		if ss.ID == st.Leader {
			ss.Role = RoleLeader
		}
		if s.ID == self {
			ss.LastContact, ss.Healthy = now, true
			st.Role = ss.Role
		} else if p, err := peer.Decode(ss.ID); err == nil {
			ss.LastContact = n.contact.last(p)
			ss.Healthy = !ss.LastContact.IsZero() && now.Sub(ss.LastContact) < 2*n.cfg.HeartbeatTimeout
		}
		st.Servers = append(st.Servers, ss)
	}
	switch n.raft.State() {
	case raft.Leader:
		st.Role = RoleLeader
	case raft.Candidate:
		st.Role = RoleCandidate
	case raft.Shutdown:
		st.Role = RoleShutdown
	}
	if st.Role == RoleLeader && st.Leader == "" {
		st.Leader = st.ID
	}
	slices.Sort(st.Voters)
	slices.Sort(st.Nonvoters)
	return st
}

// AddVoter admits id as a member (if it is not one) and makes it a raft
// voter. It runs on the leader only (*NotLeaderError elsewhere). The policy
// does not demote a healthy voter, so voters added beyond Config.Voters
// stay.
func (n *Node) AddVoter(ctx context.Context, id string) error {
	return n.addServer(ctx, id, true)
}

// AddNonvoter admits id as a member (if it is not one) and makes it a raft
// non-voter, which replicates the log. Leader only. The join protocol does
// this for peers that prove the cluster secret.
func (n *Node) AddNonvoter(ctx context.Context, id string) error {
	return n.addServer(ctx, id, false)
}

func (n *Node) addServer(ctx context.Context, id string, voter bool) error {
	if _, err := peer.Decode(id); err != nil {
		return fmt.Errorf("consensus: %q is not a peer id: %w", id, err)
	}
	if !n.IsLeader() {
		return &NotLeaderError{Leader: n.Leader()}
	}
	if !n.fsm.IsMember(id) {
		if _, err := n.Apply(ctx, PutMember(Member{ID: id, Joined: time.Now()})); err != nil {
			return err
		}
	}
	timeout := n.changeTimeout(ctx)
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout)
	}
	if err := n.wait(ctx, f); err != nil {
		return fmt.Errorf("consensus: add %s: %w", id, err)
	}
	n.refreshServers()
	n.kickPolicy()
	return nil
}

// Remove takes id out of the cluster: its membership is dropped (a write
// that any node can make; it is forwarded to the leader) and the leader
// removes it from the raft configuration. Removing the leader itself makes
// it step down.
func (n *Node) Remove(ctx context.Context, id string) error {
	if _, err := n.Apply(ctx, RemoveMember(id)); err != nil {
		return err
	}
	if !n.IsLeader() {
		return nil // the leader's policy removes the server
	}
	if err := n.wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, n.changeTimeout(ctx))); err != nil {
		return fmt.Errorf("consensus: remove %s: %w", id, err)
	}
	n.refreshServers()
	return nil
}

func (n *Node) changeTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return n.cfg.ApplyTimeout
}

// ErrAlone: Leave was called on the only server of a cluster.
var ErrAlone = errors.New("consensus: this node is the cluster's only server")

// Leave takes this node out of the cluster for good: a leader first hands
// its leadership to another voter, then the node's membership is dropped
// through raft and the leader's policy removes it from the configuration
// (promoting a non-voter if a voter left). It returns once the leader has
// stopped replicating to this node, or when ctx ends; Close the node
// afterwards and discard its state (it no longer receives the log).
func (n *Node) Leave(ctx context.Context) error {
	self := raft.ServerID(n.cfg.LocalID)
	cfg, err := n.configuration()
	if err != nil {
		return err
	}
	others := 0
	for _, s := range cfg.Servers {
		if s.ID != self {
			others++
		}
	}
	if others == 0 {
		return ErrAlone
	}
	if n.IsLeader() {
		if !n.hasOtherVoter() {
			return errors.New("consensus: this node is the only voter; wait for the policy to promote another")
		}
		if err := n.wait(ctx, n.raft.LeadershipTransfer()); err != nil {
			return fmt.Errorf("consensus: hand over leadership: %w", err)
		}
	}
	if _, err := n.Apply(ctx, RemoveMember(n.cfg.LocalID)); err != nil {
		return err
	}
	for {
		leader := n.Leader()
		if leader == "" || leader == string(self) {
			return nil // nobody replicates to us any more
		}
		if cfg, err := n.configuration(); err == nil && !slices.ContainsFunc(cfg.Servers, func(s raft.Server) bool { return s.ID == self }) {
			return nil
		}
		if p, err := peer.Decode(leader); err == nil && time.Since(n.contact.last(p)) > 2*n.cfg.HeartbeatTimeout {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: membership dropped, but the leader still replicates to this node: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
