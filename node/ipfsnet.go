package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/p2p"
)

// DefaultIPFSBootstrap is Kubo 0.43's default bootstrap list: the IPFS
// DHT's public entry points.
var DefaultIPFSBootstrap = []string{
	"/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
	"/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
	"/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
	"/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
	"/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
	"/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
}

// Toggle is a setting that is on, off, or left to the node ("auto"). In
// the config file it is true, false or "auto" (also "on" and "off").
type Toggle string

// The values of a Toggle; "" means ToggleAuto.
const (
	ToggleAuto Toggle = "auto"
	ToggleOn   Toggle = "true"
	ToggleOff  Toggle = "false"
)

// UnmarshalJSON takes true, false, "auto", "true", "false", "on", "off".
func (t *Toggle) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v {
	case true, "true", "on":
		*t = ToggleOn
	case false, "false", "off":
		*t = ToggleOff
	case "auto", "", nil:
		*t = ToggleAuto
	default:
		return fmt.Errorf("%s is not true, false or \"auto\"", b)
	}
	return nil
}

// MarshalJSON writes true, false or "auto".
func (t Toggle) MarshalJSON() ([]byte, error) {
	switch t {
	case ToggleOn:
		return []byte("true"), nil
	case ToggleOff:
		return []byte("false"), nil
	}
	return []byte(`"auto"`), nil
}

// On resolves the toggle: auto means def.
func (t Toggle) On(def bool) bool {
	switch t {
	case ToggleOn:
		return true
	case ToggleOff:
		return false
	}
	return def
}

// What a node announces in the IPFS DHT (IPFSConfig.Provide).
const (
	ProvideRoots = "roots" // every pinned root (default)
	ProvideAll   = "all"   // every block of the cluster's content
)

// IPFSConfig is the node's part in the IPFS network. Bitswap is always
// served (a Kubo node that connects fetches the cluster's content); the
// IPFS DHT is joined when DHT is on.
type IPFSConfig struct {
	// DHT joins the IPFS DHT (/ipfs/kad/1.0.0) and announces the cluster's
	// content there: true, false, or "auto" (default: on when the node
	// listens on a public address). `fungi testnet` turns it off unless
	// --ipfs-dht.
	DHT Toggle `json:"dht,omitempty"`
	// Bootstrap are the IPFS DHT peers to join through (multiaddrs with
	// /p2p/). Unset means Kubo's default list (DefaultIPFSBootstrap); an
	// empty list, none.
	Bootstrap *[]string `json:"bootstrap,omitempty"`
	// DHTPrivateAddrs admits peers with only private or loopback addresses
	// to the IPFS DHT (test networks, private IPFS networks); the public
	// DHT keeps them out. Kubo peers of such a network need the same
	// (Kubo's TEST_DHT_STUB=1).
	DHTPrivateAddrs bool `json:"dht_private_addrs,omitempty"`
	// Provide is what is announced: "roots" (every pinned root; default)
	// or "all" (every block).
	Provide string `json:"provide,omitempty"`
	// ReprovideInterval: everything is announced again this often (a Go
	// duration, default "22h", as Kubo; records expire after 48 h).
	ReprovideInterval string `json:"reprovide_interval,omitempty"`
	// FetchTimeout: `pin add` of content the cluster lacks gives up when
	// no block arrives for this long (a Go duration, default "2m").
	FetchTimeout string `json:"fetch_timeout,omitempty"`
}

func (c IPFSConfig) validate() error {
	switch c.DHT {
	case "", ToggleAuto, ToggleOn, ToggleOff:
	default:
		return fmt.Errorf("ipfs.dht %q: want true, false or \"auto\"", string(c.DHT))
	}
	switch c.Provide {
	case "", ProvideRoots, ProvideAll:
	default:
		return fmt.Errorf("ipfs.provide %q: want %q or %q", c.Provide, ProvideRoots, ProvideAll)
	}
	if err := (p2p.IPFSConfig{Bootstrap: c.bootstrap()}).Validate(); err != nil {
		return fmt.Errorf("ipfs.bootstrap: %s", strings.TrimPrefix(err.Error(), "p2p: IPFS bootstrap address "))
	}
	if _, err := c.reprovideInterval(); err != nil {
		return err
	}
	if _, err := c.fetchTimeout(); err != nil {
		return err
	}
	return nil
}

func (c IPFSConfig) reprovideInterval() (time.Duration, error) {
	return positiveDuration("ipfs.reprovide_interval", c.ReprovideInterval, p2p.DefaultReprovideInterval)
}

// DefaultFetchTimeout is how long an ingest waits for its next block.
const DefaultFetchTimeout = 2 * time.Minute

func (c IPFSConfig) fetchTimeout() (time.Duration, error) {
	return positiveDuration("ipfs.fetch_timeout", c.FetchTimeout, DefaultFetchTimeout)
}

func positiveDuration(key, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive Go duration such as \"30s\"", key, s)
	}
	return d, nil
}

func (c IPFSConfig) bootstrap() []string {
	if c.Bootstrap == nil {
		return DefaultIPFSBootstrap
	}
	return *c.Bootstrap
}

// ipfsNet is the node in the IPFS network: bitswap serving the cluster's
// blocks, and (when on) the IPFS DHT announcing them.
type ipfsNet struct {
	repo    *Repo
	host    *p2p.Host
	bitswap *p2p.Bitswap
	log     *slog.Logger
	provide string
}

// startIPFS starts bitswap on the host, and joins the IPFS DHT when the
// config (or, for auto, a public address) says so.
func startIPFS(ctx context.Context, repo *Repo, host *p2p.Host, a *api, log *slog.Logger) (*ipfsNet, error) {
	ic := repo.Config.IPFS
	bs, err := host.StartBitswap(aheadSource{repo}, p2p.BitswapConfig{Registry: a.reg})
	if err != nil {
		return nil, err
	}
	n := &ipfsNet{repo: repo, host: host, bitswap: bs, log: log, provide: or(ic.Provide, ProvideRoots)}
	if !ic.DHT.On(host.HasPublicAddr()) {
		why := "ipfs.dht false"
		if ic.DHT.On(true) { // auto
			why = "ipfs.dht auto and no public address"
		}
		log.Info("fungi daemon: bitswap on; IPFS DHT off (" + why + ")")
		return n, nil
	}
	every, err := ic.reprovideInterval()
	if err != nil {
		return nil, err
	}
	err = host.JoinIPFS(ctx, p2p.IPFSConfig{
		Bootstrap:         ic.bootstrap(),
		PrivateAddrs:      ic.DHTPrivateAddrs,
		ReprovideInterval: every,
		Keys:              n.keys,
	})
	if err != nil {
		return nil, err
	}
	go n.announceLoop(ctx)
	return n, nil
}

// aheadSource serves bitswap peers with read-ahead (prefetch.go).
type aheadSource struct{ *Repo }

func (s aheadSource) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return s.GetBlockAhead(ctx, c)
}

// keys lists what to announce: the pinned roots, or every block.
func (n *ipfsNet) keys(ctx context.Context) (<-chan cid.Cid, error) {
	cs := n.announced(ctx)
	ch := make(chan cid.Cid)
	go func() {
		defer close(ch)
		for _, c := range cs {
			select {
			case ch <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// announced returns what the node announces now.
func (n *ipfsNet) announced(ctx context.Context) []cid.Cid {
	if n.provide == ProvideAll {
		s := n.repo.blockSource()
		if err := s.sync(ctx); err != nil {
			n.log.Warn("IPFS provide: block index", "err", err)
		}
		return s.idx.Blocks()
	}
	cc := n.repo.cluster
	if cc == nil {
		return nil
	}
	var out []cid.Cid
	for _, p := range cc.fsm().Pins() {
		if c, err := cid.Decode(p); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// announceLoop announces new content as soon as it is committed: every
// second, when the cluster's metadata changed, it compares what the node
// serves with what it announced.
func (n *ipfsNet) announceLoop(ctx context.Context) {
	done := map[cid.Cid]bool{}
	var at uint64  // the FSM's applied index at the last complete pass
	failed := true // a provide failed: pass again even if nothing changed
	announce := func() bool {
		// what is announced changes only with the cluster's metadata: a
		// second's tick costs nothing until it does
		cc := n.repo.cluster
		if cc == nil {
			return true
		}
		now := cc.fsm().AppliedIndex()
		if now == at && !failed {
			return true
		}
		at, failed = now, false
		for _, c := range n.announced(ctx) {
			if done[c] {
				continue
			}
			if err := n.host.IPFSProvide(ctx, c); err != nil {
				if ctx.Err() == nil {
					n.log.Warn("IPFS provide", "cid", c.String(), "err", err)
				}
				failed = true
				continue
			}
			done[c] = true
		}
		return true
	}
	announce()
	ticks(ctx, time.Second, announce)
}

// ipfsStatus is GET /api/v0/ipfs/status: bitswap and the IPFS DHT.
type ipfsStatus struct {
	p2p.IPFSStatus
	Provide string `json:"provide"`
	// Announced is how many CIDs the node announces.
	Announced int `json:"announced"`
}

// ipfsStatusHandler: GET /api/v0/ipfs/status.
func (a *api) ipfsStatusHandler(w http.ResponseWriter, r *http.Request) error {
	if a.ipfs == nil {
		return httpError{http.StatusServiceUnavailable, errors.New("no IPFS network on this node (not a daemon)")}
	}
	writeJSON(w, http.StatusOK, a.ipfs.status(r.Context()))
	return nil
}

func (n *ipfsNet) status(ctx context.Context) ipfsStatus {
	st := ipfsStatus{IPFSStatus: n.host.IPFS(), Provide: n.provide}
	if st.Joined {
		st.Announced = len(n.announced(ctx))
	}
	return st
}
