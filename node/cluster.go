package node

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/p2p"
)

// Errors of cluster membership changes.
var (
	// ErrInCluster: join was asked of a node that already shares a cluster
	// with other nodes.
	ErrInCluster = errors.New("already in a cluster with other nodes (fungi cluster leave first)")
	// ErrNotClustered: leave was asked of a node alone in its cluster.
	ErrNotClustered = errors.New("not in a cluster with other nodes")
	// ErrWouldForget: joining would drop metadata this node's own cluster
	// holds.
	ErrWouldForget = errors.New("joining would forget this node's own cluster metadata")
)

// clusterRunner owns the daemon's consensus.Node. Joining another cluster
// or leaving one replaces it: raft restarts on fresh state.
type clusterRunner struct {
	ctx  context.Context
	path string
	repo *Repo
	host *p2p.Host
	log  *slog.Logger

	mu      sync.Mutex // serialises join, leave and close
	cur     atomic.Pointer[consensus.Node]
	secret  atomic.Pointer[[]byte]
	joining context.CancelFunc // stops the background join loop
	closed  bool
}

func (c *clusterRunner) dir() string { return filepath.Join(c.path, "raft") }

// isMember reports whether p is a member of the pool (the replicated
// membership): the gate of member-only protocols.
func (c *clusterRunner) isMember(p peer.ID) bool { return c.node().FSM().IsMember(p.String()) }

// node returns the current consensus node.
func (c *clusterRunner) node() *consensus.Node { return c.cur.Load() }

// raftConfig is the consensus config from the repo's.
func (c *clusterRunner) raftConfig() consensus.Config {
	cc := c.repo.Config.Cluster
	return consensus.Config{
		Dir:               c.dir(),
		Voters:            cc.Voters,
		SnapshotThreshold: cc.SnapshotThreshold,
		TrailingLogs:      cc.TrailingLogs,
		Authorize: func(p peer.ID, nonce, proof []byte) bool {
			return hmac.Equal(proof, consensus.JoinSecretProof(*c.secret.Load(), nonce, p.String()))
		},
		Logger: c.log,
	}
}

// startCluster opens the node's raft state. A fresh node with no bootstrap
// peers founds a cluster; a fresh node with some joins through them (in the
// background, retrying until it is admitted); a node with state rejoins by
// itself.
func startCluster(ctx context.Context, path string, repo *Repo, host *p2p.Host, log *slog.Logger) (*clusterRunner, error) {
	c := &clusterRunner{ctx: ctx, path: path, repo: repo, host: host, log: log}
	secret := repo.Secret()
	c.secret.Store(&secret)
	_, statErr := os.Stat(filepath.Join(c.dir(), "raft.db"))
	fresh := errors.Is(statErr, os.ErrNotExist)
	cn, err := consensus.New(c.raftConfig(), host.LibP2P())
	if err != nil {
		return nil, err
	}
	c.cur.Store(cn)
	go c.report()
	if !fresh {
		return c, nil
	}
	boot := repo.Config.P2P.Bootstrap
	if len(boot) == 0 {
		if err := cn.Bootstrap(); err != nil {
			cn.Close()
			return nil, err
		}
		log.Info("fungi daemon: founded a new cluster")
		return c, nil
	}
	jctx, cancel := context.WithCancel(ctx)
	c.joining = cancel
	go c.joinLoop(jctx, cn, boot)
	return c, nil
}

// joinLoop asks the bootstrap peers to admit this node until one does.
func (c *clusterRunner) joinLoop(ctx context.Context, cn *consensus.Node, boot []string) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		for _, a := range boot {
			ai, err := peer.AddrInfoFromString(a)
			if err != nil || ai.ID == c.host.ID() {
				continue
			}
			jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = cn.Join(jctx, *ai, *c.secret.Load())
			cancel()
			if err == nil {
				c.log.Info("fungi daemon: joined the cluster", "via", ai.ID.String())
				return
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("fungi daemon: join", "via", ai.ID.String(), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)):
		}
	}
}

// Close stops the current node (a leader hands over first).
func (c *clusterRunner) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.joining != nil {
		c.joining()
	}
	return c.node().Close()
}

// servers counts the raft configuration's servers as this node sees it.
func servers(st consensus.Status) int { return len(st.Voters) + len(st.Nonvoters) }

// Join makes this node a member of the cluster that addr (a multiaddr
// with /p2p/ID) belongs to, proving secretHex (default: the repo's
// secret). A node alone in its own cluster gives that cluster up; if it
// holds metadata, only with force. The secret is checked before anything
// is given up: a refused join changes nothing.
func (c *clusterRunner) Join(ctx context.Context, addr, secretHex string, force bool) error {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return badRequest("bad multiaddr %q: want /ip4/HOST/tcp/PORT/p2p/PEERID (%v)", addr, err)
	}
	if ai.ID == c.host.ID() {
		return badRequest("%s is this node", ai.ID)
	}
	secret := *c.secret.Load()
	if secretHex != "" {
		if secret, err = parseOrMakeSecret(secretHex); err != nil {
			return badRequest("%v", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return consensus.ErrClosed
	}
	cn := c.node()
	st := cn.Status()
	if servers(st) > 1 {
		return httpError{409, fmt.Errorf("%w (%d servers)", ErrInCluster, servers(st))}
	}
	if s := cn.FSM().Stats(); !force && (s.Manifests > 0 || s.Pins > 0 || s.Paths > 0) {
		return httpError{409, fmt.Errorf("%w: %d objects, %d pins, %d paths (--force to join anyway)", ErrWouldForget, s.Manifests, s.Pins, s.Paths)}
	}
	// prove the secret first: a wrong one must not cost the current cluster
	c.host.LibP2P().Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	if err := consensus.Join(ctx, c.host.LibP2P(), *ai, secret); err != nil {
		if errors.Is(err, consensus.ErrJoinRefused) {
			return httpError{403, err}
		}
		return httpError{502, fmt.Errorf("join through %s: %w", ai.ID, err)}
	}
	cfg := c.repo.Config
	cfg.P2P.Bootstrap = []string{addr}
	next, err := c.restart(cfg, secret)
	if err != nil {
		return err
	}
	if err := next.Join(ctx, *ai, secret); err != nil {
		// admitted already: keep trying in the background, as at start
		jctx, cancel := context.WithCancel(c.ctx)
		c.joining = cancel
		go c.joinLoop(jctx, next, cfg.P2P.Bootstrap)
		return fmt.Errorf("admitted, still catching up: %w", err)
	}
	c.log.Info("fungi daemon: joined the cluster", "via", ai.ID.String())
	return nil
}

// Leave takes this node out of its cluster; it then founds a new one of
// its own (it keeps the cluster secret, so it can be joined again).
func (c *clusterRunner) Leave(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return consensus.ErrClosed
	}
	cn := c.node()
	if servers(cn.Status()) <= 1 {
		return httpError{409, ErrNotClustered}
	}
	if err := cn.Leave(ctx); err != nil {
		if errors.Is(err, consensus.ErrAlone) {
			return httpError{409, ErrNotClustered}
		}
		return err
	}
	cfg := c.repo.Config
	cfg.P2P.Bootstrap = nil
	next, err := c.restart(cfg, *c.secret.Load())
	if err != nil {
		return err
	}
	if err := next.Bootstrap(); err != nil {
		return err
	}
	for !next.IsLeader() && ctx.Err() == nil { // a cluster of one elects itself at once
		time.Sleep(20 * time.Millisecond)
	}
	c.log.Info("fungi daemon: left the cluster and founded a new one")
	return nil
}

// restart replaces the consensus node by one on fresh state, after saving
// cfg and secret to the repo.
func (c *clusterRunner) restart(cfg Config, secret []byte) (*consensus.Node, error) {
	if c.joining != nil {
		c.joining()
		c.joining = nil
	}
	if err := c.node().Close(); err != nil {
		c.log.Warn("fungi daemon: closing raft", "err", err)
	}
	if err := os.RemoveAll(c.dir()); err != nil {
		return nil, err
	}
	if err := c.repo.saveConfig(cfg, secret); err != nil {
		return nil, err
	}
	c.secret.Store(&secret)
	next, err := consensus.New(c.raftConfig(), c.host.LibP2P())
	if err != nil {
		return nil, err
	}
	c.cur.Store(next)
	return next, nil
}

// report keeps this node's member record current: its failure domain and
// its ZDB capacity and usage.
func (c *clusterRunner) report() {
	// quickly at first: placement leaves out members until they report
	every := 200 * time.Millisecond
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(every):
		}
		cn := c.node()
		self := c.host.ID().String()
		m, ok := cn.FSM().Member(self)
		if !ok || cn.Leader() == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		if d := c.repo.Config.Cluster.Domain; m.Domain != d {
			m.Domain = d
			if _, err := cn.Apply(ctx, consensus.PutMember(m)); err != nil {
				c.log.Debug("report domain", "err", err)
			}
		}
		capacity, used := c.repo.usage()
		if differs(capacity, m.Capacity) || differs(used, m.Used) || (m.Capacity == 0) != (capacity == 0) {
			if _, err := cn.Apply(ctx, consensus.SetUsage(self, capacity, used)); err != nil {
				c.log.Debug("report usage", "err", err)
			}
		}
		cancel()
		every = 2 * time.Second
	}
}

// differs: a and b are more than 1 MiB and 1% apart, worth a log entry.
func differs(a, b uint64) bool {
	d := max(a, b) - min(a, b)
	return d > 1<<20 && d > max(a, b)/100
}

// usage returns the embedded ZDB's capacity (the configured one, or the
// size of the file system holding its data) and the bytes it uses.
func (r *Repo) usage() (capacity, used uint64) {
	used = uint64(r.frags.DataSize() + r.meta.DataSize())
	if r.Config.Cluster.NoStore {
		return 0, used // not part of the pool
	}
	capacity = r.Config.Cluster.Capacity
	if capacity == 0 {
		var fs syscall.Statfs_t
		if syscall.Statfs(filepath.Join(r.Path, r.Config.ZDB.Data), &fs) == nil {
			capacity = fs.Blocks * uint64(fs.Bsize)
		}
	}
	return capacity, used
}

// saveConfig writes cfg and secret to the repo (each atomically).
func (r *Repo) saveConfig(cfg Config, secret []byte) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(r.Path, secretFile), []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(r.Path, configFile), configJSON(cfg), 0o644); err != nil {
		return err
	}
	r.Config.P2P.Bootstrap = cfg.P2P.Bootstrap // the one field a running node changes
	r.secret.Store(&secret)
	return nil
}

// writeFileAtomic replaces path with b (mode perm), so that a reader or a
// crash sees the old content or the new, never a mix. Each call writes a
// temporary file of its own in the same directory: concurrent writers (two
// `fungi config` runs, or one beside the daemon's own save) never write
// into each other's; the last rename wins.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
