package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults used by DefaultConfig and by New for zero-valued fields.
const (
	// DefaultDHTPrefix keeps the cluster's DHT apart from the public IPFS
	// DHT (whose prefix is "/ipfs"): the DHT protocol is "/fungi/kad/1.0.0".
	DefaultDHTPrefix = "/fungi"
	// DefaultPingInterval is how often every connected peer is pinged.
	DefaultPingInterval = 10 * time.Second
	// DefaultConnLow and DefaultConnHigh are the connection manager's
	// watermarks: above High connections it trims down to Low.
	DefaultConnLow  = 64
	DefaultConnHigh = 192
)

// DefaultListenAddrs are TCP and QUIC on port 4001 on every IPv4 interface.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

// Config configures a Host. The zero value of every field means its default
// (see DefaultConfig); New fills them in, so a partly filled Config is fine.
// The hooks (func, logger, registerer) are tagged json:"-", so the rest can
// live in a config file.
type Config struct {
	// ListenAddrs are the multiaddrs to listen on, e.g.
	// "/ip4/0.0.0.0/tcp/4001" and "/ip4/0.0.0.0/udp/4001/quic-v1". Port 0
	// picks a free port. Only TCP and QUIC (quic-v1) are supported. Empty
	// means DefaultListenAddrs.
	ListenAddrs []string

	// Bootstrap are peers to connect to at start, as multiaddrs ending in
	// /p2p/<peer id>, e.g. "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...". Several
	// addresses of one peer are merged; the host's own ID is skipped, so
	// every node of a cluster can share one list. The DHT also reconnects to
	// them when its routing table runs empty.
	Bootstrap []string

	// RequireBootstrap makes New fail when Bootstrap is not empty and no
	// bootstrap peer could be reached. Otherwise failures are only logged and
	// the host starts alone (the DHT retries later).
	RequireBootstrap bool

	// BootstrapTimeout bounds each bootstrap dial in New. Zero means 10s.
	BootstrapTimeout time.Duration

	// DHTPrefix is the DHT protocol prefix: the DHT speaks
	// DHTPrefix+"/kad/1.0.0". The default "/fungi" keeps the cluster DHT to
	// itself; "/ipfs" joins the public IPFS (Amino) DHT, whose rules (bucket
	// size, record validators) go-libp2p-kad-dht then enforces.
	DHTPrefix string

	// PingInterval is how often every connected peer is pinged to keep its
	// RTT estimate fresh. A newly connected peer is pinged at once.
	PingInterval time.Duration

	// ConnLow and ConnHigh are the connection manager's low and high
	// watermarks. Zero means DefaultConnLow / DefaultConnHigh.
	ConnLow, ConnHigh int

	// MaxMemory bounds, in bytes, the memory libp2p may hold for
	// connections and streams (mostly their receive windows): the resource
	// manager refuses what would go over. One peer may hold 1/16 of it (8
	// to 64 MiB), a member (Host.Allowed) 1/4. Zero means 1/8 of the RAM,
	// or of the container's memory limit, between 128 MiB and 2 GiB. At
	// least MinMaxMemory.
	MaxMemory int64

	// MaxFileDescriptors bounds the file descriptors libp2p may use (one
	// per TCP connection and listener); keep it above ConnHigh. Zero means
	// half the process's limit (RLIMIT_NOFILE). At least
	// MinMaxFileDescriptors.
	MaxFileDescriptors int

	// ExtraLatency, when set, adds a simulated one-way delay to every stream
	// this package opens or accepts for its own protocols (Host.NewStream,
	// Host.HandleMember, Host.Handle and the RTT pings), in both directions.
	// It stands in for network latency on a machine without netem; see
	// DelayStream for exactly what is simulated. The DHT and libp2p's own
	// protocols (identify, …) are not delayed. It is called once per stream
	// from the goroutine opening or accepting it; it must be cheap and safe
	// for concurrent use. It gives the delay from this host to remote; the
	// remote applies its own for the other direction, so a testnet giving
	// every pair (a, b) the same value on both sides adds 2*d to each round
	// trip. Leave nil in production.
	ExtraLatency func(remote peer.ID) time.Duration `json:"-"`

	// OnRTT, when set, is called after every successful ping with the peer's
	// updated (smoothed) RTT estimate, so another package can feed its own
	// latency table. It is called from the latency-tracking goroutines and
	// must not block. Host.SetOnRTT replaces it later.
	OnRTT func(peer.ID, time.Duration) `json:"-"`

	// Metrics, when set, receives libp2p's Prometheus metrics (swarm,
	// identify, resource manager, …). Nil disables them: no global registry
	// is touched.
	Metrics prometheus.Registerer `json:"-"`

	// Logger receives connection and bootstrap events. Nil means
	// slog.Default().
	Logger *slog.Logger `json:"-"`
}

// DefaultConfig returns the configuration a node runs with unless told
// otherwise: TCP and QUIC on port 4001, no bootstrap peers, the cluster's own
// DHT, a ping every 10 s. MaxMemory and MaxFileDescriptors stay zero: New
// sizes them to the machine.
func DefaultConfig() Config {
	return Config{
		ListenAddrs:      append([]string(nil), DefaultListenAddrs...),
		BootstrapTimeout: 10 * time.Second,
		DHTPrefix:        DefaultDHTPrefix,
		PingInterval:     DefaultPingInterval,
		ConnLow:          DefaultConnLow,
		ConnHigh:         DefaultConnHigh,
	}
}

// withDefaults returns cfg with its zero fields filled in.
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = d.ListenAddrs
	}
	if cfg.BootstrapTimeout == 0 {
		cfg.BootstrapTimeout = d.BootstrapTimeout
	}
	if cfg.DHTPrefix == "" {
		cfg.DHTPrefix = d.DHTPrefix
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = d.PingInterval
	}
	if cfg.ConnLow == 0 && cfg.ConnHigh == 0 {
		cfg.ConnLow, cfg.ConnHigh = d.ConnLow, d.ConnHigh
	} else if cfg.ConnHigh == 0 {
		cfg.ConnHigh = max(cfg.ConnLow, d.ConnHigh)
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = defaultMaxMemory()
	}
	if cfg.MaxFileDescriptors == 0 {
		cfg.MaxFileDescriptors = defaultMaxFileDescriptors()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// Validate checks cfg (after filling in defaults for zero fields) and
// returns the first problem as one line naming the field and the value, e.g.
//
//	p2p: listen address "/ip4/nope": failed to parse multiaddr "/ip4/nope": …
func (cfg Config) Validate() error {
	_, _, err := cfg.withDefaults().parse()
	return err
}

// parse validates cfg and returns its listen addresses and bootstrap peers.
// cfg must have had its defaults filled in.
func (cfg Config) parse() (listen []multiaddr.Multiaddr, boot []peer.AddrInfo, err error) {
	for _, s := range cfg.ListenAddrs {
		a, err := parseListenAddr(s)
		if err != nil {
			return nil, nil, fmt.Errorf("p2p: listen address %q: %s", s, oneLine(err))
		}
		listen = append(listen, a)
	}
	var bootAddrs []multiaddr.Multiaddr
	for _, s := range cfg.Bootstrap {
		a, err := parseBootstrapAddr(s)
		if err != nil {
			return nil, nil, fmt.Errorf("p2p: bootstrap address %q: %s", s, oneLine(err))
		}
		bootAddrs = append(bootAddrs, a)
	}
	if len(bootAddrs) > 0 {
		boot, err = peer.AddrInfosFromP2pAddrs(bootAddrs...)
		if err != nil {
			return nil, nil, fmt.Errorf("p2p: bootstrap addresses: %s", oneLine(err))
		}
	}
	switch {
	case cfg.DHTPrefix != "" && (!strings.HasPrefix(cfg.DHTPrefix, "/") || strings.HasSuffix(cfg.DHTPrefix, "/") || strings.ContainsAny(cfg.DHTPrefix, " \t\n")):
		return nil, nil, fmt.Errorf("p2p: DHT prefix %q: want the form /name, e.g. %q", cfg.DHTPrefix, DefaultDHTPrefix)
	case cfg.PingInterval < 0:
		return nil, nil, fmt.Errorf("p2p: ping interval %s: must be positive", cfg.PingInterval)
	case cfg.BootstrapTimeout < 0:
		return nil, nil, fmt.Errorf("p2p: bootstrap timeout %s: must be positive", cfg.BootstrapTimeout)
	case cfg.ConnLow < 0 || cfg.ConnHigh < 0 || cfg.ConnLow > cfg.ConnHigh:
		return nil, nil, fmt.Errorf("p2p: connection watermarks low=%d high=%d: want 0 <= low <= high", cfg.ConnLow, cfg.ConnHigh)
	case cfg.MaxMemory < MinMaxMemory:
		return nil, nil, fmt.Errorf("p2p: max memory %d: want at least %d (128 MiB), or 0 for 1/8 of the RAM", cfg.MaxMemory, MinMaxMemory)
	case cfg.MaxFileDescriptors < MinMaxFileDescriptors:
		return nil, nil, fmt.Errorf("p2p: max file descriptors %d: want at least %d, or 0 for half the process limit", cfg.MaxFileDescriptors, MinMaxFileDescriptors)
	}
	return listen, boot, nil
}

// parseBootstrapAddr accepts a multiaddr ending in /p2p/<peer id>.
func parseBootstrapAddr(s string) (multiaddr.Multiaddr, error) {
	a, err := parseMultiaddr(s)
	if err != nil {
		return nil, err
	}
	if _, err := a.ValueForProtocol(multiaddr.P_P2P); err != nil {
		return nil, errors.New("no /p2p/<peer id> part")
	}
	if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
		return nil, err
	}
	return a, nil
}

// parseMultiaddr parses s, keeping the reason of a failure without
// repeating s.
func parseMultiaddr(s string) (multiaddr.Multiaddr, error) {
	a, err := multiaddr.NewMultiaddr(strings.TrimSpace(s))
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, `": `); strings.HasPrefix(msg, "failed to parse multiaddr") && i >= 0 {
			msg = msg[i+3:]
		}
		return nil, errors.New(msg)
	}
	return a, nil
}

// parseListenAddr accepts a multiaddr on a transport New sets up.
func parseListenAddr(s string) (multiaddr.Multiaddr, error) {
	a, err := parseMultiaddr(s)
	if err != nil {
		return nil, err
	}
	var tcp, quic, udp bool
	for _, c := range a {
		switch c.Code() {
		case multiaddr.P_TCP:
			tcp = true
		case multiaddr.P_UDP:
			udp = true
		case multiaddr.P_QUIC_V1:
			quic = true
		case multiaddr.P_P2P:
			return nil, errors.New("a listen address has no /p2p/ part")
		}
	}
	if !tcp && !(udp && quic) {
		return nil, errors.New("not a TCP or QUIC (/udp/…/quic-v1) address")
	}
	return a, nil
}

// oneLine flattens an error message so a config problem is one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// protocolID returns the DHT prefix as a protocol ID.
func (cfg Config) protocolID() protocol.ID { return protocol.ID(cfg.DHTPrefix) }
