package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/boxo/bitswap"
	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/exchange"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus"
)

// BlockSource is what the bitswap server serves: blocks by CID. An
// unknown CID is an error matching ipld.ErrNotFound. It is called
// concurrently.
type BlockSource interface {
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
	// BlockSize and HasBlock answer from an index, without fetching.
	BlockSize(ctx context.Context, c cid.Cid) (int, error)
	HasBlock(ctx context.Context, c cid.Cid) (bool, error)
}

// Defaults of BitswapConfig.
const (
	// DefaultBitswapPeerBytes bounds the block bytes queued for one peer:
	// a few blocks in flight (boxo's default, 1 MiB, is one 1 MiB leaf at
	// a time, which serialises a peer's fetch on our per-block latency).
	DefaultBitswapPeerBytes = 8 << 20
	// DefaultBitswapPeerWants bounds one peer's wantlist.
	DefaultBitswapPeerWants = 1024
	// DefaultBitswapWorkers is how many blocks are read for peers at once.
	DefaultBitswapWorkers = 16
)

// BitswapConfig configures the bitswap server and client. Zero values
// mean the defaults.
type BitswapConfig struct {
	// PeerBytes bounds the block bytes queued for one peer
	// (DefaultBitswapPeerBytes), PeerWants its wantlist entries
	// (DefaultBitswapPeerWants).
	PeerBytes int
	PeerWants uint
	// Workers is how many envelopes of blocks are read and sent at once
	// (DefaultBitswapWorkers).
	Workers int
	// Registry, when set, receives fungi_bitswap_* metrics: blocks and
	// bytes sent to members and to other peers.
	Registry prometheus.Registerer
}

// Bitswap is the host's bitswap: a server open to every peer (IPFS nodes
// fetch the cluster's blocks from it) and a client that fetches blocks
// from connected peers and, when the host is in the IPFS DHT, from the
// providers it finds there.
type Bitswap struct {
	bs  *bitswap.Bitswap
	net bsnetwork.BitSwapNetwork
}

// StartBitswap starts bitswap on the host, serving src. Bitswap, identify
// and ping are open to every peer, members or not. Close (or the host's
// Close) stops it.
func (h *Host) StartBitswap(src BlockSource, cfg BitswapConfig) (*Bitswap, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if cfg.PeerBytes <= 0 {
		cfg.PeerBytes = DefaultBitswapPeerBytes
	}
	if cfg.PeerWants == 0 {
		cfg.PeerWants = DefaultBitswapPeerWants
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultBitswapWorkers
	}
	tr := newBitswapTracer(h, cfg.Registry)
	net := bsnet.NewFromIpfsHost(h.h)
	bs := bitswap.New(h.ctx, net, providers{h}, sourceStore{src},
		bitswap.MaxOutstandingBytesPerPeer(cfg.PeerBytes),
		bitswap.MaxQueuedWantlistEntriesPerPeer(cfg.PeerWants),
		bitswap.TaskWorkerCount(cfg.Workers),
		bitswap.EngineTaskWorkerCount(cfg.Workers),
		bitswap.WithTracer(tr),
		bitswap.WithoutDuplicatedBlockStats(),
		bitswap.SetSendDontHaves(true),
	)
	b := &Bitswap{bs: bs, net: net}
	h.mu.Lock()
	h.bitswap = append(h.bitswap, b)
	h.mu.Unlock()
	return b, nil
}

// Close stops the bitswap server and client. It is idempotent.
func (b *Bitswap) Close() error {
	err := b.bs.Close()
	b.net.Stop()
	return err
}

// Session returns a fetcher that gets blocks from connected peers (and
// from IPFS DHT providers when the host is in the IPFS DHT), learning
// which peers have a DAG's blocks as it goes: use one per DAG. It ends
// with ctx. Every block it returns was verified against its CID.
func (b *Bitswap) Session(ctx context.Context) exchange.Fetcher { return b.bs.NewSession(ctx) }

// GetBlock fetches one block (a session of its own).
func (b *Bitswap) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return b.bs.GetBlock(ctx, c)
}

// GetBlocks fetches blocks in one session; the channel closes when all
// arrived or ctx ends.
func (b *Bitswap) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	return b.bs.GetBlocks(ctx, cs)
}

// providers is the client's content discovery: the IPFS DHT when the host
// has joined it, else nothing (the client still asks connected peers).
type providers struct{ h *Host }

func (p providers) FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo {
	if r := p.h.IPFSRouting(); r != nil {
		return r.FindProvidersAsync(ctx, c, count)
	}
	ch := make(chan peer.AddrInfo)
	close(ch)
	return ch
}

var _ routing.ContentDiscovery = providers{}

// errReadOnly: the bitswap server's store takes no blocks.
var errReadOnly = errors.New("p2p: bitswap store is read-only")

// sourceStore is a BlockSource as the read-only blockstore boxo's bitswap
// wants.
type sourceStore struct{ src BlockSource }

func (s sourceStore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return s.src.GetBlock(ctx, c)
}

func (s sourceStore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	n, err := s.src.BlockSize(ctx, c)
	if err == nil && n == 0 {
		// boxo's engine takes a size of 0 for "not here" and would never
		// send the empty block (the raw leaf of every empty file added
		// with raw leaves): a Kubo server has the same bug and its peers
		// hang on such trees. The size only sizes the reply.
		n = 1
	}
	return n, err
}

func (s sourceStore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return s.src.HasBlock(ctx, c)
}

func (sourceStore) DeleteBlock(context.Context, cid.Cid) error    { return errReadOnly }
func (sourceStore) Put(context.Context, blocks.Block) error       { return errReadOnly }
func (sourceStore) PutMany(context.Context, []blocks.Block) error { return errReadOnly }
func (sourceStore) HashOnRead(bool)                               {}
func (sourceStore) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, fmt.Errorf("p2p: bitswap store cannot list its keys: %w", ipld.ErrNotFound{})
}

// bitswapTracer counts what the server sends, by whether the peer is a
// member.
type bitswapTracer struct {
	h      *Host
	blocks *prometheus.CounterVec
	bytes  *prometheus.CounterVec
}

func newBitswapTracer(h *Host, reg prometheus.Registerer) *bitswapTracer {
	t := &bitswapTracer{
		h: h,
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fungi_bitswap_blocks_sent_total",
			Help: "Blocks the bitswap server sent, by peer kind (member: a cluster member; other: any other peer, e.g. an IPFS node).",
		}, []string{"peer"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fungi_bitswap_bytes_sent_total",
			Help: "Block bytes the bitswap server sent, by peer kind (member, other).",
		}, []string{"peer"}),
	}
	for _, k := range []string{"member", "other"} {
		t.blocks.WithLabelValues(k)
		t.bytes.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(t.blocks, t.bytes)
	}
	return t
}

func (t *bitswapTracer) MessageReceived(peer.ID, bsmsg.BitSwapMessage) {}

func (t *bitswapTracer) MessageSent(p peer.ID, m bsmsg.BitSwapMessage) {
	blks := m.Blocks()
	if len(blks) == 0 {
		return
	}
	kind := "other"
	if t.h.isMember(p) {
		kind = "member"
	}
	n := 0
	for _, b := range blks {
		n += len(b.RawData())
	}
	t.blocks.WithLabelValues(kind).Add(float64(len(blks)))
	t.bytes.WithLabelValues(kind).Add(float64(n))
}

// isMember reports whether a membership gate is set and lets p in (no
// gate: nobody counts as a member).
func (h *Host) isMember(p peer.ID) bool {
	allow := h.allowed.Load()
	return allow != nil && (*allow)(p)
}
