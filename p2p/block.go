package p2p

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Block cuts this host off from the given peers at the connection level:
// their connections are closed and new ones are refused in both directions
// (dials and accepts), for every protocol, DHT included, until Unblock. It
// is how tests and the testnet partition a cluster without netem. Blocking
// is local: to partition A from B it is enough that either blocks the
// other.
func (h *Host) Block(ids ...peer.ID) {
	h.gate.block(ids)
	for _, id := range ids {
		h.h.Network().ClosePeer(id)
	}
}

// Unblock lets the given peers connect again. It does not reconnect.
func (h *Host) Unblock(ids ...peer.ID) { h.gate.unblock(ids) }

// Blocked returns the blocked peers, sorted.
func (h *Host) Blocked() []peer.ID { return h.gate.list() }

// blockGate is the host's connection gater: it refuses blocked peers.
type blockGate struct {
	mu      sync.RWMutex
	blocked map[peer.ID]bool
}

var _ connmgr.ConnectionGater = (*blockGate)(nil)

func (g *blockGate) block(ids []peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = map[peer.ID]bool{}
	}
	for _, id := range ids {
		g.blocked[id] = true
	}
}

func (g *blockGate) unblock(ids []peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		delete(g.blocked, id)
	}
}

func (g *blockGate) list() []peer.ID {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]peer.ID, 0, len(g.blocked))
	for id := range g.blocked {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (g *blockGate) allows(id peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return !g.blocked[id]
}

func (g *blockGate) InterceptPeerDial(p peer.ID) bool { return g.allows(p) }

func (g *blockGate) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool { return g.allows(p) }

func (g *blockGate) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *blockGate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allows(p)
}

func (g *blockGate) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.allows(c.RemotePeer()), 0
}
