package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/provider"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// IPFSDHTProtocol is the IPFS (Amino) DHT's protocol, which JoinIPFS
// speaks beside the cluster's own DHT.
const IPFSDHTProtocol = "/ipfs/kad/1.0.0"

// DefaultReprovideInterval is how often every announced CID is announced
// again: Kubo's interval, well before the IPFS DHT's provider records
// expire (48 h).
const DefaultReprovideInterval = 22 * time.Hour

// ErrNoIPFS is returned by the IPFS-network calls of a host that has not
// joined the IPFS DHT (JoinIPFS).
var ErrNoIPFS = errors.New("p2p: not in the IPFS DHT (ipfs.dht is off)")

// IPFSConfig configures a host's part in the IPFS network's DHT.
type IPFSConfig struct {
	// Bootstrap are IPFS peers to join the DHT through, as multiaddrs ending
	// in /p2p/<peer id> (/dnsaddr/ ones are resolved).
	Bootstrap []string
	// PrivateAddrs accepts peers that have only private or loopback
	// addresses into the routing table and queries. The public IPFS DHT
	// keeps them out (as Kubo's does); a test network on loopback, or a
	// private IPFS network on a LAN, needs them in. A Kubo peer of such a
	// network needs the same (Kubo's TEST_DHT_STUB environment variable).
	PrivateAddrs bool
	// ReprovideInterval is how often every key of Keys is announced again
	// (zero: DefaultReprovideInterval; negative: never).
	ReprovideInterval time.Duration
	// Keys lists what to announce again at every reprovide (the first one
	// runs a minute after joining): what this node serves. New content is
	// announced at once with Host.IPFSProvide.
	Keys func(ctx context.Context) (<-chan cid.Cid, error)
}

// Validate checks cfg's bootstrap addresses; the error is one line naming
// the address.
func (cfg IPFSConfig) Validate() error {
	_, err := parseIPFSBootstrap(cfg.Bootstrap)
	return err
}

// ipfsNet is the host's part in the IPFS network: the IPFS DHT and the
// provider system announcing this host's content in it.
type ipfsNet struct {
	dht  *dht.IpfsDHT
	prov provider.System
}

// JoinIPFS joins the IPFS DHT (/ipfs/kad/1.0.0) in server mode beside the
// cluster's DHT, connects to cfg.Bootstrap and starts announcing: the keys
// cfg.Keys lists every cfg.ReprovideInterval, and what IPFSProvide is
// given at once. Unreachable bootstrap peers are logged, not fatal. It may
// be called once; Close leaves the DHT.
func (h *Host) JoinIPFS(ctx context.Context, cfg IPFSConfig) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ipfs != nil {
		return errors.New("p2p: already in the IPFS DHT")
	}
	boot, err := parseIPFSBootstrap(cfg.Bootstrap)
	if err != nil {
		return err
	}
	boot = withoutPeer(boot, h.ID())
	opts := []dht.Option{
		dht.Mode(dht.ModeServer),
		dht.Concurrency(10),
		// the namespaces the IPFS DHT requires (go-libp2p-kad-dht checks)
		dht.Validator(record.NamespacedValidator{
			"pk":   record.PublicKeyValidator{},
			"ipns": ipns.Validator{KeyBook: h.h.Peerstore()},
		}),
	}
	if len(boot) > 0 {
		opts = append(opts, dht.BootstrapPeers(boot...))
	}
	if cfg.PrivateAddrs {
		opts = append(opts,
			dht.AddressFilter(nil),
			dht.QueryFilter(func(any, peer.AddrInfo) bool { return true }),
			dht.RoutingTableFilter(func(any, peer.ID) bool { return true }),
			dht.RoutingTablePeerDiversityFilter(nil))
	} else {
		// Kubo's rules for the public (WAN) DHT
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.RoutingTablePeerDiversityFilter(dht.NewRTPeerDiversityFilter(h.h, 2, 3)))
	}
	d, err := dht.New(h.h, opts...)
	if err != nil {
		return fmt.Errorf("p2p: join the IPFS DHT: %s", oneLine(err))
	}
	popts := []provider.Option{provider.Online(d)}
	switch {
	case cfg.ReprovideInterval < 0:
		popts = append(popts, provider.ReproviderInterval(0))
	case cfg.ReprovideInterval > 0:
		popts = append(popts, provider.ReproviderInterval(cfg.ReprovideInterval))
	}
	if cfg.Keys != nil {
		popts = append(popts, provider.KeyProvider(cfg.Keys))
	}
	// the queue of keys to announce lives in memory: a restarted node
	// announces everything again a minute after it joins
	prov, err := provider.New(dssync.MutexWrap(datastore.NewMapDatastore()), popts...)
	if err != nil {
		d.Close()
		return fmt.Errorf("p2p: IPFS provider: %s", oneLine(err))
	}
	h.ipfs = &ipfsNet{dht: d, prov: prov}
	h.wg.Go(func() {
		reached := h.connectAll(h.ctx, boot, "IPFS bootstrap")
		if reached > 0 {
			_ = d.Bootstrap(h.ctx)
		}
	})
	h.log.Info("p2p joined the IPFS DHT", "protocol", IPFSDHTProtocol, "bootstrap", len(boot), "private_addrs", cfg.PrivateAddrs)
	return nil
}

// parseIPFSBootstrap parses bootstrap multiaddrs; /dnsaddr/ ones (Kubo's
// default list is of those) are resolved when dialed.
func parseIPFSBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		a, err := parseMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: IPFS bootstrap address %q: %s", s, err)
		}
		if _, err := a.ValueForProtocol(multiaddr.P_DNSADDR); err == nil { // resolved on dial
			ai, err := peer.AddrInfoFromP2pAddr(a)
			if err != nil {
				return nil, fmt.Errorf("p2p: IPFS bootstrap address %q: %s", s, oneLine(err))
			}
			out = append(out, *ai)
			continue
		}
		a, err = parseBootstrapAddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: IPFS bootstrap address %q: %s", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("p2p: IPFS bootstrap address %q: %s", s, oneLine(err))
		}
		out = append(out, *ai)
	}
	// several addresses of one peer are one peer
	merged := map[peer.ID]int{}
	var infos []peer.AddrInfo
	for _, ai := range out {
		if i, ok := merged[ai.ID]; ok {
			infos[i].Addrs = append(infos[i].Addrs, ai.Addrs...)
			continue
		}
		merged[ai.ID] = len(infos)
		infos = append(infos, ai)
	}
	return infos, nil
}

// connectAll dials peers in parallel (each bounded by the bootstrap
// timeout), logs the failures and returns how many it reached.
func (h *Host) connectAll(ctx context.Context, peers []peer.AddrInfo, what string) int {
	var mu sync.Mutex
	reached := 0
	var wg sync.WaitGroup
	for _, ai := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, h.cfg.BootstrapTimeout)
			defer cancel()
			if err := h.h.Connect(ctx, ai); err != nil {
				h.log.Warn("p2p "+what+" peer unreachable", "peer", ai.ID, "err", oneLine(err))
				return
			}
			mu.Lock()
			reached++
			mu.Unlock()
		})
	}
	wg.Wait()
	return reached
}

// InIPFS reports whether the host joined the IPFS DHT.
func (h *Host) InIPFS() bool { return h.ipfsNet() != nil }

func (h *Host) ipfsNet() *ipfsNet {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ipfs
}

// IPFSProvide queues c to be announced in the IPFS DHT now, and again at
// every reprovide while the Keys of IPFSConfig list it. It returns once c
// is queued (the announcement itself runs in the background).
func (h *Host) IPFSProvide(ctx context.Context, c cid.Cid) error {
	n := h.ipfsNet()
	if n == nil {
		return ErrNoIPFS
	}
	return n.prov.Provide(ctx, c, true)
}

// IPFSReprovide announces every key of IPFSConfig.Keys again now, and
// returns when done.
func (h *Host) IPFSReprovide(ctx context.Context) error {
	n := h.ipfsNet()
	if n == nil {
		return ErrNoIPFS
	}
	return n.prov.Reprovide(ctx)
}

// IPFSRouting is the IPFS DHT as a content router (providers of a CID), or
// nil when the host has not joined it.
func (h *Host) IPFSRouting() routing.ContentRouting {
	if n := h.ipfsNet(); n != nil {
		return n.dht
	}
	return nil
}

// IPFSStatus is the host's view of the IPFS DHT.
type IPFSStatus struct {
	// Joined: the host is in the IPFS DHT.
	Joined bool `json:"joined"`
	// RoutingTable is how many IPFS DHT peers the routing table holds.
	RoutingTable int `json:"routing_table"`
	// Reprovides, LastReprovide and LastReprovideKeys describe the
	// announcements made again so far.
	Reprovides        uint64    `json:"reprovides"`
	LastReprovide     time.Time `json:"last_reprovide,omitzero"`
	LastReprovideKeys uint64    `json:"last_reprovide_keys"`
}

// IPFS returns the host's view of the IPFS DHT.
func (h *Host) IPFS() IPFSStatus {
	n := h.ipfsNet()
	if n == nil {
		return IPFSStatus{}
	}
	st := IPFSStatus{Joined: true, RoutingTable: n.dht.RoutingTable().Size()}
	if ps, err := n.prov.Stat(); err == nil {
		st.Reprovides = ps.TotalReprovides
		st.LastReprovide = ps.LastRun
		st.LastReprovideKeys = ps.LastReprovideBatchSize
	}
	return st
}

// HasPublicAddr reports whether the host listens on a public (globally
// routable) address: such a node joins the IPFS DHT unless told not to.
func (h *Host) HasPublicAddr() bool {
	for _, a := range h.h.Addrs() {
		if manet.IsPublicAddr(a) {
			return true
		}
	}
	return false
}

// closeIPFS leaves the IPFS DHT (Close calls it).
func (h *Host) closeIPFS() error {
	n := h.ipfsNet()
	if n == nil {
		return nil
	}
	return errors.Join(n.prov.Close(), n.dht.Close())
}
