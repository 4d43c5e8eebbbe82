package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

// Sentinel errors. Errors from a Host wrap them where they apply.
var (
	// ErrClosed is returned by calls on a Host after Close.
	ErrClosed = errors.New("p2p: host closed")
	// ErrNoBootstrap is returned by New when Config.RequireBootstrap is set
	// and no bootstrap peer could be reached.
	ErrNoBootstrap = errors.New("no bootstrap peer reachable")
	// ErrNotFound is routing.ErrNotFound: FindPeer found no address.
	ErrNotFound = routing.ErrNotFound
)

// Host is a running libp2p host with its DHT and latency tracker. All its
// methods are safe for concurrent use. It owns every goroutine it starts;
// Close stops and waits for them.
type Host struct {
	cfg  Config
	h    host.Host
	dht  *dht.IpfsDHT
	log  *slog.Logger
	lat  *latencyTable
	ping *ping.PingService
	gate *blockGate
	cm   *connmgr.BasicConnMgr
	sec  *securityTable // what each connection negotiated (security.go)
	ipfs *ipfsNet       // the IPFS DHT and provider, when on (ipfs.go; guarded by mu)

	bitswap []*Bitswap // started on the host, closed with it (guarded by mu)

	allowed atomic.Pointer[func(peer.ID) bool]
	onRTT   atomic.Pointer[func(peer.ID, time.Duration)]

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the host's own goroutines

	// handlers counts running stream handlers registered through this
	// package; closing stops new ones from being counted (mu guards both).
	mu       sync.Mutex
	closing  bool
	handlers sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// fragClients caches FragmentPeer's clients (guarded by fragMu).
	fragMu      sync.Mutex
	fragClients map[peer.ID]*FragmentClient
}

// New starts a host with identity priv: it listens on cfg.ListenAddrs (TCP
// and QUIC, Noise or TLS security, yamux), starts the DHT in server mode
// under cfg.DHTPrefix, starts latency tracking and connects to the bootstrap
// peers. ctx bounds only the start-up (the bootstrap dials); the host runs
// until Close.
//
// Unreachable bootstrap peers are logged, not fatal, unless
// cfg.RequireBootstrap is set and none was reached: then New fails with an
// error wrapping ErrNoBootstrap. Configuration errors are one line (see
// Config.Validate).
func New(ctx context.Context, cfg Config, priv crypto.PrivKey) (*Host, error) {
	if priv == nil {
		return nil, errors.New("p2p: no identity key")
	}
	cfg = cfg.withDefaults()
	listen, boot, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: identity: %w", err)
	}
	boot = withoutPeer(boot, self)

	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	gate := &blockGate{}
	sec := newSecurityTable()
	limits, err := limitOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.NoListenAddrs, // listened on below, one by one, for clear errors
		// No SO_REUSEPORT: a second node on the same port must fail clearly.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
	}
	// TLS first, then Noise (security.go says why)
	opts = append(opts, sec.options()...)
	opts = append(opts, limits...)
	opts = append(opts,
		libp2p.DialRanker(tcpFirst),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gate),
		libp2p.Ping(false), // ours, so that ExtraLatency applies to it
		libp2p.DisableRelay(),
		libp2p.UserAgent("fungistor"),
	)
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start host: %s", oneLine(err))
	}
	for i, a := range listen {
		if err := lh.Network().Listen(a); err != nil {
			lh.Close()
			return nil, fmt.Errorf("p2p: listen address %q: %s", cfg.ListenAddrs[i], oneLine(err))
		}
	}

	dopts := []dht.Option{dht.Mode(dht.ModeServer), dht.ProtocolPrefix(cfg.protocolID())}
	if len(boot) > 0 {
		dopts = append(dopts, dht.BootstrapPeers(boot...))
	}
	d, err := dht.New(lh, dopts...)
	if err != nil {
		lh.Close()
		return nil, fmt.Errorf("p2p: start DHT: %s", oneLine(err))
	}

	h := &Host{cfg: cfg, h: lh, dht: d, log: cfg.Logger, lat: newLatencyTable(), ping: &ping.PingService{Host: lh}, gate: gate, sec: sec, cm: cm}
	h.protectMembers()
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if cfg.OnRTT != nil {
		h.SetOnRTT(cfg.OnRTT)
	}
	lh.SetStreamHandler(ping.ID, h.serve(false, h.ping.PingHandler))
	if err := h.startLatency(); err != nil {
		h.Close()
		return nil, err
	}
	if err := h.bootstrap(ctx, boot); err != nil {
		h.Close()
		return nil, err
	}
	h.log.Info("p2p host started", "peer", lh.ID(), "addrs", lh.Addrs(), "dht", cfg.DHTPrefix)
	return h, nil
}

// withoutPeer drops id from infos, so a node can share the cluster's
// bootstrap list that names itself.
func withoutPeer(infos []peer.AddrInfo, id peer.ID) []peer.AddrInfo {
	out := infos[:0:0]
	for _, ai := range infos {
		if ai.ID != id {
			out = append(out, ai)
		}
	}
	return out
}

// bootstrap connects to the bootstrap peers in parallel and asks the DHT to
// refresh its routing table.
func (h *Host) bootstrap(ctx context.Context, boot []peer.AddrInfo) error {
	if len(boot) == 0 {
		return nil
	}
	errs := make([]error, len(boot))
	var wg sync.WaitGroup
	for i, ai := range boot {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, h.cfg.BootstrapTimeout)
			defer cancel()
			errs[i] = h.h.Connect(ctx, ai)
		})
	}
	wg.Wait()
	reached := 0
	var first error
	for i, err := range errs {
		if err == nil {
			reached++
			continue
		}
		h.log.Warn("p2p bootstrap peer unreachable", "peer", boot[i].ID, "err", oneLine(err))
		if first == nil {
			first = fmt.Errorf("%s: %s", boot[i].ID, oneLine(err))
		}
	}
	if reached == 0 && h.cfg.RequireBootstrap {
		return fmt.Errorf("p2p: %w (tried %d): %v", ErrNoBootstrap, len(boot), first)
	}
	if reached > 0 {
		// Refreshes the routing table in the background; the DHT owns it.
		_ = h.dht.Bootstrap(h.ctx)
	}
	return nil
}

// Close stops latency tracking, the DHT and the libp2p host (closing every
// connection), then waits for the goroutines and stream handlers this
// package started. It is idempotent; later calls return the first result.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.cancel()
		h.wg.Wait()
		h.mu.Lock()
		h.closing = true
		bs := h.bitswap
		h.mu.Unlock()
		var errs []error
		for _, b := range bs {
			errs = append(errs, b.Close())
		}
		errs = append(errs, h.closeIPFS(), h.dht.Close(), h.h.Close())
		h.handlers.Wait()
		if err := errors.Join(errs...); err != nil {
			h.closeErr = fmt.Errorf("p2p: close: %w", err)
		}
	})
	return h.closeErr
}

// ID returns the host's peer ID.
func (h *Host) ID() peer.ID { return h.h.ID() }

// Addrs returns the host's listen addresses as full multiaddrs ending in
// /p2p/<id>, ready to be given to another node as a bootstrap address.
// Unspecified listen addresses (0.0.0.0) are expanded to the interfaces'.
func (h *Host) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.h.ID(), Addrs: h.h.Addrs()})
	if err != nil { // only for an empty peer ID: a broken invariant
		panic(err)
	}
	return addrs
}

// AddrInfo returns the host's ID and listen addresses.
func (h *Host) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: h.h.ID(), Addrs: h.h.Addrs()}
}

// LibP2P returns the underlying libp2p host, for protocols that need it
// directly (streams opened on it bypass ExtraLatency and the membership
// gate).
func (h *Host) LibP2P() host.Host { return h.h }

// DHT returns the Kademlia DHT.
func (h *Host) DHT() *dht.IpfsDHT { return h.dht }

// Connect dials a peer (if not already connected) and adds its addresses to
// the peerstore.
func (h *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if err := h.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %s", ai.ID, oneLine(err))
	}
	return nil
}

// FindPeer returns the addresses of peer id: from the peerstore when
// connected, otherwise through a DHT lookup (which may connect to it). An
// unknown peer gives an error wrapping ErrNotFound.
func (h *Host) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if h.ctx.Err() != nil {
		return peer.AddrInfo{}, ErrClosed
	}
	if id == h.h.ID() {
		return h.AddrInfo(), nil
	}
	ai, err := h.dht.FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: find peer %s: %w", id, err)
	}
	if len(ai.Addrs) == 0 {
		// Connected by the peer, which has not told us its listen
		// addresses yet: identify does.
		h.waitIdentify(ctx, id)
		ai = h.h.Peerstore().PeerInfo(id)
	}
	return ai, nil
}

// waitIdentify waits until identify ran on every connection to id, or ctx
// is done.
func (h *Host) waitIdentify(ctx context.Context, id peer.ID) {
	ids, ok := h.h.(interface{ IDService() identify.IDService })
	if !ok {
		return
	}
	for _, c := range h.h.Network().ConnsToPeer(id) {
		select {
		case <-ids.IDService().IdentifyWait(c):
		case <-ctx.Done():
			return
		}
	}
}

// Provide announces in the DHT that this host holds c: it records itself
// locally and stores a provider record on the peers closest to c. It
// returns once those puts finished. Records expire (48 h in
// go-libp2p-kad-dht); re-announcing is the caller's job.
func (h *Host) Provide(ctx context.Context, c cid.Cid) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if err := h.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("p2p: provide %s: %w", c, err)
	}
	return nil
}

// FindProviders returns up to max peers that announced c (max <= 0: all it
// finds before the lookup ends or ctx is done), including this host if it
// provides c. Finding none is not an error: the result is empty. An error
// is returned only when ctx ended before any provider was found.
func (h *Host) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if !c.Defined() {
		return nil, errors.New("p2p: find providers: undefined CID")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	count := 0 // go-libp2p-kad-dht: 0 means all
	if max > 0 {
		count = max
	}
	var out []peer.AddrInfo
	for ai := range h.dht.FindProvidersAsync(ctx, c, count) {
		out = append(out, ai)
	}
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("p2p: find providers %s: %w", c, context.Cause(ctx))
	}
	return out, nil
}

// quicFallback is how long a dial waits for TCP before it also tries QUIC.
const quicFallback = 300 * time.Millisecond

// tcpFirst is the dial ranker: TCP addresses at once, the others (QUIC)
// quicFallback later, or at once when the peer has no TCP address. Bulk
// fragment traffic costs several times less CPU over TCP (large segments,
// one syscall per 64 KiB on loopback) than over QUIC (one syscall and one
// packet decryption per 1.2 KiB datagram); libp2p's default ranker dials
// QUIC first.
func tcpFirst(addrs []multiaddr.Multiaddr) []network.AddrDelay {
	isTCP := func(a multiaddr.Multiaddr) bool {
		_, err := a.ValueForProtocol(multiaddr.P_TCP)
		return err == nil
	}
	hasTCP := slices.ContainsFunc(addrs, isTCP)
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		var d time.Duration
		if hasTCP && !isTCP(a) {
			d = quicFallback
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}
