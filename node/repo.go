package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/p2p"
	"github.com/fungistor/fungistor/store/zdb"
)

// Config is the repo's config file ($FUNGI_PATH/config.json). Every field
// has a default that works; the file documents itself through these names.
type Config struct {
	// Profile is the UnixFS import profile: unixfs-v1-2025 or
	// kubo-v1-default.
	Profile string `json:"profile"`
	// Coding is K/M: K data fragments, M extra (any K of K+M rebuild a
	// block); ":sys" stores the K data fragments themselves (systematic)
	// instead of equations only.
	Coding string `json:"coding"`
	// ZDB is where the embedded ZDB keeps its files, relative to the repo.
	ZDB ZDBDirs `json:"zdb"`
	// ZDBSync fsyncs every fragment write (slower; safe against power loss).
	ZDBSync bool `json:"zdb_sync"`
	// API is the daemon's HTTP API address (host:port). Keep it on
	// localhost: its write endpoints are not authenticated.
	API string `json:"api"`
	// P2P configures the libp2p host.
	P2P P2PConfig `json:"p2p"`
	// Cluster configures this node's part in the cluster.
	Cluster ClusterConfig `json:"cluster"`
	// Gateway configures the IPFS HTTP gateway.
	Gateway GatewayConfig `json:"gateway"`
	// IPFS configures the node's part in the IPFS network (bitswap, the
	// IPFS DHT, fetching content the cluster lacks).
	IPFS IPFSConfig `json:"ipfs"`
	// Mount configures the FUSE mount of the shared tree.
	Mount MountConfig `json:"mount"`
	// Repair configures self-healing: the grace before a silent member
	// counts as lost, the repair and scrub rates, audits.
	Repair RepairConfig `json:"repair"`
}

// ClusterConfig is the cluster part of the config. Zero values mean the
// defaults.
type ClusterConfig struct {
	// Domain is this node's failure domain or region tag (a rack, a site):
	// placement spreads fragments across domains and the leader prefers
	// voters in domains that have none yet.
	Domain string `json:"domain"`
	// Capacity is the bytes this node offers the pool (default: the size
	// of the file system holding the ZDB).
	Capacity uint64 `json:"capacity"`
	// Voters is how many raft voters the cluster keeps: 3 (default) or 5.
	// The leader's setting is the one that counts.
	Voters int `json:"voters"`
	// SnapshotThreshold: raft snapshots after this many new log entries
	// (default 8192).
	SnapshotThreshold uint64 `json:"snapshot_threshold"`
	// TrailingLogs: log entries kept after a snapshot, so that a node that
	// was briefly away catches up from the log (default 10240).
	TrailingLogs uint64 `json:"trailing_logs"`
	// NoStore: this node holds no fragments of new content (it reads and
	// serves content, e.g. as a gateway, but is not part of the pool).
	NoStore bool `json:"no_store"`
	// OrphanAge: fragments that no object in the cluster references are
	// deleted once they are this old (a Go duration, default "1h"): what
	// an add that failed or whose leader crashed left behind.
	OrphanAge string `json:"orphan_age,omitempty"`
}

// P2PConfig is the libp2p part of the config.
type P2PConfig struct {
	// Listen are multiaddrs to listen on (TCP and QUIC).
	Listen []string `json:"listen"`
	// Bootstrap are multiaddrs (with /p2p/ID) of cluster peers to join.
	Bootstrap []string `json:"bootstrap"`
	// Latency simulates network delay (tests and the local testnet, since
	// netem is not always available): peer ID -> one-way delay added to
	// every stream of this node's own protocols to that peer, e.g.
	// {"12D3KooW...": "40ms"}. See p2p.Config.ExtraLatency.
	Latency map[string]string `json:"latency,omitempty"`
}

// ZDBDirs are the embedded ZDB's directories.
type ZDBDirs struct {
	Data  string `json:"data"`
	Index string `json:"index"`
}

// DefaultConfig is what `fungi init` writes.
func DefaultConfig() Config {
	return Config{
		Profile: fungi.DefaultProfile.Name,
		Coding:  fungi.DefaultCoding().String(),
		ZDB:     ZDBDirs{Data: "zdb/data", Index: "zdb/index"},
		API:     "127.0.0.1:5980",
		P2P:     P2PConfig{Listen: append([]string(nil), p2p.DefaultListenAddrs...)},
		Gateway: GatewayConfig{Listen: DefaultGatewayListen},
	}
}

// Validate checks every field.
func (c Config) Validate() error {
	if _, err := fungi.ParseProfile(c.Profile); err != nil {
		return fmt.Errorf("config: profile: %w", err)
	}
	if _, err := fungi.ParseCoding(c.Coding); err != nil {
		return fmt.Errorf("config: coding: %w", err)
	}
	if c.ZDB.Data == "" || c.ZDB.Index == "" {
		return errors.New("config: zdb.data and zdb.index are required")
	}
	if _, port, err := net.SplitHostPort(c.API); err != nil || port == "" {
		return fmt.Errorf("config: api %q: want host:port", c.API)
	}
	if err := c.p2pConfig().Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := c.latency(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := c.orphanAge(); err != nil {
		return err
	}
	if err := c.Gateway.validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := c.Repair.settings(); err != nil {
		return err
	}
	if err := c.Mount.validate(); err != nil {
		return err
	}
	if err := c.IPFS.validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if v := c.Cluster.Voters; v != 0 && v != 1 && v != 3 && v != 5 {
		return fmt.Errorf("config: cluster.voters is %d: use 3 or 5", v)
	}
	return nil
}

// configJSON is the config file's text.
func configJSON(c Config) []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

// p2pConfig is the p2p package's config from the repo's.
func (c Config) p2pConfig() p2p.Config {
	pc := p2p.DefaultConfig()
	pc.ListenAddrs = c.P2P.Listen
	pc.Bootstrap = c.P2P.Bootstrap
	if delays, err := c.latency(); err == nil && len(delays) > 0 {
		pc.ExtraLatency = func(p peer.ID) time.Duration { return delays[p] }
	}
	return pc
}

// latency parses P2P.Latency.
func (c Config) latency() (map[peer.ID]time.Duration, error) {
	out := map[peer.ID]time.Duration{}
	for id, d := range c.P2P.Latency {
		p, err := peer.Decode(id)
		if err != nil {
			return nil, fmt.Errorf("p2p.latency: bad peer id %q: %v", id, err)
		}
		v, err := time.ParseDuration(d)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("p2p.latency: %s: bad delay %q (want e.g. \"40ms\")", id, d)
		}
		out[p] = v
	}
	return out, nil
}

// orphanAge is Cluster.OrphanAge parsed (default one hour).
func (c Config) orphanAge() (time.Duration, error) {
	if c.Cluster.OrphanAge == "" {
		return time.Hour, nil
	}
	d, err := time.ParseDuration(c.Cluster.OrphanAge)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("config: cluster.orphan_age %q: want a duration such as \"1h\"", c.Cluster.OrphanAge)
	}
	return d, nil
}

const (
	identityFile = "identity"
	configFile   = "config.json"
	secretFile   = "secret"
	// namespaces of the embedded ZDB
	fragmentNS = "fragments"
	metaNS     = "meta"
)

// RepoPath returns $FUNGI_PATH, or ~/.fungi.
func RepoPath() string {
	if p := os.Getenv("FUNGI_PATH"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".fungi"
	}
	return filepath.Join(home, ".fungi")
}

// ErrNoRepo: the repo was not initialised.
var ErrNoRepo = errors.New("no fungi repo (run `fungi init`)")

// InitOptions configure Init.
type InitOptions struct {
	Config Config
	// Secret is the cluster secret (hex); empty generates one.
	Secret string
}

// Init creates a repo at path: config, cluster secret, and the embedded
// ZDB with its namespaces. It refuses to overwrite an existing repo.
func Init(path string, o InitOptions) error {
	if err := o.Config.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(path, configFile)); err == nil {
		return fmt.Errorf("%s: repo already exists", path)
	}
	secret, err := parseOrMakeSecret(o.Secret)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(path, secretFile), []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return err
	}
	if _, err := p2p.LoadOrCreateIdentity(filepath.Join(path, identityFile)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(path, configFile), configJSON(o.Config), 0o644); err != nil {
		return err
	}
	r, err := OpenRepo(path, nil)
	if err != nil {
		return err
	}
	return r.Close()
}

func parseOrMakeSecret(s string) ([]byte, error) {
	if s == "" {
		b := make([]byte, 32)
		rand.Read(b)
		return b, nil
	}
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) < 16 {
		return nil, errors.New("cluster secret must be at least 16 bytes, hex encoded")
	}
	return b, nil
}

// Repo is an open local repo: config, secret, the embedded ZDB.
type Repo struct {
	Path   string
	Config Config
	secret atomic.Pointer[[]byte] // replaced when the node joins a cluster
	// cluster, set by the daemon, is the pool: new content is dispersed
	// over it and committed through raft; reads find manifests and
	// fragments through it. nil: the repo works alone.
	cluster *clusterContent

	codecMu sync.Mutex
	codecs  map[string]*fungi.Codec // by coding and secret
	db      *zdb.DB
	frags   *zdb.Namespace
	meta    *zdb.Namespace
	logger  *slog.Logger

	// blocks serves blocks of any object by CID (created on first use);
	// localGen counts the repo's own manifest writes, so it knows when to
	// look at them again.
	blocksOnce sync.Once
	blocks     *blockSource
	localGen   atomic.Uint64

	// tree, set by the daemon, serves the blocks of the shared tree's
	// directories (their UnixFS hashes).
	tree *treeHasher
}

func (r *Repo) log() *slog.Logger { return r.logger }

// readConfig reads and checks the repo's config file.
func readConfig(path string) (Config, error) {
	cfg, err := readConfigFile(path)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", filepath.Join(path, configFile), err)
	}
	return cfg, nil
}

// UpdateConfig changes the config of the repo at path (no daemon may be
// running on it): fn edits it, the result is validated and written
// atomically.
func UpdateConfig(path string, fn func(*Config)) error {
	cfg, err := readConfig(path)
	if err != nil {
		return err
	}
	fn(&cfg)
	if err := cfg.Validate(); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(path, configFile), configJSON(cfg), 0o644)
}

// OpenRepo opens the repo at path (one process at a time: the embedded ZDB
// holds a lock).
func OpenRepo(path string, log *slog.Logger) (*Repo, error) {
	cfg, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	sb, err := os.ReadFile(filepath.Join(path, secretFile))
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	secret, err := parseOrMakeSecret(string(sb))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(path, secretFile), err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dcfg := zdb.DefaultConfig()
	dcfg.DataDir = filepath.Join(path, cfg.ZDB.Data)
	dcfg.IndexDir = filepath.Join(path, cfg.ZDB.Index)
	dcfg.Sync = cfg.ZDBSync
	dcfg.Logger = log
	db, err := zdb.Open(dcfg)
	if errors.Is(err, zdb.ErrLocked) {
		return nil, fmt.Errorf("%s: repo is in use by another fungi process", path)
	}
	if err != nil {
		return nil, err
	}
	r := &Repo{Path: path, Config: cfg, db: db, logger: log}
	r.secret.Store(&secret)
	for _, ns := range []struct {
		name string
		dst  **zdb.Namespace
	}{{fragmentNS, &r.frags}, {metaNS, &r.meta}} {
		n, err := db.Namespace(ns.name)
		if errors.Is(err, zdb.ErrNoNamespace) {
			n, err = db.CreateNamespace(ns.name)
		}
		if err != nil {
			db.Close()
			return nil, err
		}
		*ns.dst = n
	}
	return r, nil
}

// PeerID returns the repo's libp2p peer ID.
func PeerID(path string) (string, error) {
	if _, err := os.Stat(filepath.Join(path, configFile)); err != nil {
		return "", fmt.Errorf("%s: %w", path, ErrNoRepo)
	}
	priv, err := p2p.LoadOrCreateIdentity(filepath.Join(path, identityFile))
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// Secret returns the cluster secret (content keys derive from it).
func (r *Repo) Secret() []byte { return *r.secret.Load() }

// Close flushes and closes the embedded ZDB.
func (r *Repo) Close() error { return r.db.Close() }
