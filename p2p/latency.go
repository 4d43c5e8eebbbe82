package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/multiformats/go-multiaddr"
)

// Latency tracking: one goroutine watches connection events and queues newly
// connected peers; another pings them at once and pings every connected peer
// each PingInterval, with libp2p's ping protocol (/ipfs/ping/1.0.0) on a
// fresh stream per ping (so ExtraLatency applies to it).

const (
	// rttWeight is the weight of a new sample in the EWMA: recent enough to
	// follow a route change within a few pings, smooth enough to ignore one
	// slow answer. (The peerstore's own EWMA uses 0.1.)
	rttWeight = 0.25
	// pingConcurrency bounds the pings in flight per round.
	pingConcurrency = 16
	// minPingTimeout is the shortest time a ping may take before it counts
	// as failed; otherwise the timeout is PingInterval.
	minPingTimeout = 2 * time.Second
	// forgetAfter is how many ping intervals a disconnected peer's estimate
	// is kept after its last successful ping.
	forgetAfter = 30
)

// PeerInfo is what Host.Peers reports about one peer.
type PeerInfo struct {
	ID    peer.ID
	Addrs []multiaddr.Multiaddr
	// RTT is the smoothed round-trip time; 0 when unknown.
	RTT time.Duration
	// Connected is true while the host has a connection to the peer.
	Connected bool
}

type rttStat struct {
	ewma time.Duration
	last time.Time // of the last successful ping
}

// latencyTable is the per-peer RTT estimates.
type latencyTable struct {
	mu    sync.Mutex
	peers map[peer.ID]rttStat
}

func newLatencyTable() *latencyTable { return &latencyTable{peers: map[peer.ID]rttStat{}} }

// observe folds in one sample and returns the new estimate.
func (t *latencyTable) observe(p peer.ID, rtt time.Duration, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.peers[p]
	if ok {
		st.ewma = time.Duration(rttWeight*float64(rtt) + (1-rttWeight)*float64(st.ewma))
	} else {
		st.ewma = rtt
	}
	st.last = now
	t.peers[p] = st
	return st.ewma
}

func (t *latencyTable) get(p peer.ID) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.peers[p]
	return st.ewma, ok
}

func (t *latencyTable) ids() []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]peer.ID, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	return ids
}

// forget drops the estimates of peers for which keep is false and whose
// last sample is older than before.
func (t *latencyTable) forget(before time.Time, keep func(peer.ID) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, st := range t.peers {
		if st.last.Before(before) && !keep(id) {
			delete(t.peers, id)
		}
	}
}

// RTT returns the smoothed round-trip time to id from this package's pings,
// or, before the first of them answered, the peerstore's latency EWMA (fed
// by libp2p and by DHT requests, so it includes their processing). ok is
// false when neither knows id.
func (h *Host) RTT(id peer.ID) (rtt time.Duration, ok bool) {
	if rtt, ok := h.lat.get(id); ok {
		return rtt, true
	}
	if rtt := h.h.Peerstore().LatencyEWMA(id); rtt > 0 {
		return rtt, true
	}
	return 0, false
}

// Peers returns the connected peers and the recently connected ones whose
// RTT is known, nearest first; peers with an unknown RTT come last. Ties are
// broken by ID, so the order is stable.
func (h *Host) Peers() []PeerInfo {
	seen := map[peer.ID]bool{h.h.ID(): true}
	var out []PeerInfo
	add := func(id peer.ID) {
		if seen[id] {
			return
		}
		seen[id] = true
		rtt, _ := h.RTT(id)
		out = append(out, PeerInfo{
			ID:        id,
			Addrs:     h.h.Peerstore().Addrs(id),
			RTT:       rtt,
			Connected: h.h.Network().Connectedness(id) == network.Connected,
		})
	}
	for _, id := range h.h.Network().Peers() {
		add(id)
	}
	for _, id := range h.lat.ids() {
		add(id)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		switch {
		case a.RTT == b.RTT:
			return compareIDs(a.ID, b.ID)
		case a.RTT == 0:
			return 1
		case b.RTT == 0:
			return -1
		case a.RTT < b.RTT:
			return -1
		default:
			return 1
		}
	})
	return out
}

func compareIDs(a, b peer.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SetOnRTT replaces the hook called with every peer's updated RTT estimate
// (Config.OnRTT); nil removes it. See Config.OnRTT for its contract.
func (h *Host) SetOnRTT(fn func(peer.ID, time.Duration)) {
	if fn == nil {
		h.onRTT.Store(nil)
		return
	}
	h.onRTT.Store(&fn)
}

// startLatency starts the two latency goroutines.
func (h *Host) startLatency() error {
	sub, err := h.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(256), eventbus.Name("fungistor/p2p-latency"))
	if err != nil {
		return fmt.Errorf("p2p: subscribe to connection events: %w", err)
	}
	kick := make(chan struct{}, 1)
	var mu sync.Mutex
	fresh := map[peer.ID]bool{} // connected, not yet pinged

	h.wg.Go(func() {
		defer sub.Close()
		for {
			select {
			case <-h.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				ev := e.(event.EvtPeerConnectednessChanged)
				if ev.Connectedness != network.Connected {
					continue
				}
				mu.Lock()
				fresh[ev.Peer] = true
				mu.Unlock()
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}
	})

	h.wg.Go(func() {
		tick := time.NewTicker(h.cfg.PingInterval)
		defer tick.Stop()
		for {
			var peers []peer.ID
			select {
			case <-h.ctx.Done():
				return
			case <-kick:
				mu.Lock()
				for id := range fresh {
					peers = append(peers, id)
				}
				clear(fresh)
				mu.Unlock()
			case <-tick.C:
				peers = h.h.Network().Peers()
				h.lat.forget(time.Now().Add(-forgetAfter*h.cfg.PingInterval), func(id peer.ID) bool {
					return h.h.Network().Connectedness(id) == network.Connected
				})
			}
			h.pingAll(peers)
		}
	})
	return nil
}

// pingAll pings peers concurrently and returns when every ping ended.
func (h *Host) pingAll(peers []peer.ID) {
	sem := make(chan struct{}, pingConcurrency)
	var wg sync.WaitGroup
	for _, p := range peers {
		select {
		case sem <- struct{}{}:
		case <-h.ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			rtt, err := h.pingOnce(h.ctx, p)
			if _, known := h.lat.get(p); !known && err == nil {
				// a first estimate stays for several intervals: take the
				// least of a few pings, not one that met a busy moment
				for range 2 {
					if r, err := h.pingOnce(h.ctx, p); err == nil {
						rtt = min(rtt, r)
					}
				}
			}
			if err != nil {
				if h.ctx.Err() == nil {
					h.log.Debug("p2p ping failed", "peer", p, "err", oneLine(err))
				}
				return
			}
			h.h.Peerstore().RecordLatency(p, rtt)
			est := h.lat.observe(p, rtt, time.Now())
			if fn := h.onRTT.Load(); fn != nil {
				(*fn)(p, est)
			}
		})
	}
	wg.Wait()
}

// pingOnce measures one round trip to a connected peer; it does not dial.
func (h *Host) pingOnce(ctx context.Context, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, max(h.cfg.PingInterval, minPingTimeout))
	defer cancel()
	raw, err := h.h.NewStream(network.WithNoDial(ctx, "ping"), p, ping.ID)
	if err != nil {
		return 0, err
	}
	defer context.AfterFunc(ctx, func() { raw.Reset() })()
	if err := raw.Scope().SetService(ping.ServiceName); err != nil {
		raw.Reset()
		return 0, err
	}
	s := h.delay(raw)
	out := make([]byte, ping.PingSize)
	in := make([]byte, ping.PingSize)
	rand.Read(out)
	start := time.Now()
	if _, err := s.Write(out); err != nil {
		s.Reset()
		return 0, err
	}
	if _, err := io.ReadFull(s, in); err != nil {
		s.Reset()
		return 0, err
	}
	rtt := time.Since(start)
	s.Close()
	if !bytes.Equal(out, in) {
		return 0, errors.New("ping: wrong echo")
	}
	return rtt, nil
}
