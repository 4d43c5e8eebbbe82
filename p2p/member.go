package p2p

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// SetAllowed installs the membership gate: from now on, a stream of a
// protocol registered with HandleMember is reset at once, before its handler
// runs, unless allow(remote) is true. nil removes the gate (everyone is let
// in, the state of a new Host). allow is called on libp2p's stream goroutines,
// concurrently; it must be fast and must not block. The DHT, ping and
// protocols registered with Handle are never gated.
func (h *Host) SetAllowed(allow func(peer.ID) bool) {
	if allow == nil {
		h.allowed.Store(nil)
	} else {
		h.allowed.Store(&allow)
	}
	// peers connected before the gate get members' limits now
	h.RecheckMembers()
}

// Allowed reports whether the membership gate lets id in.
func (h *Host) Allowed(id peer.ID) bool {
	allow := h.allowed.Load()
	return allow == nil || (*allow)(id)
}

// HandleMember registers handler for proto, for cluster members only: a
// stream from a peer the gate (SetAllowed) does not allow is reset without
// reaching handler. The stream handler gets is delayed by
// Config.ExtraLatency. handler runs on its own goroutine per stream and must
// return once the stream fails (Close waits for it); it owns the stream and
// must Close or Reset it. Call SetAllowed first: until a gate is set, every
// peer is let in.
func (h *Host) HandleMember(proto protocol.ID, handler network.StreamHandler) {
	h.h.SetStreamHandler(proto, h.serve(true, handler))
}

// Handle registers handler for proto, open to every peer (no membership
// gate); otherwise as HandleMember.
func (h *Host) Handle(proto protocol.ID, handler network.StreamHandler) {
	h.h.SetStreamHandler(proto, h.serve(false, handler))
}

// RemoveHandler unregisters the handler of proto.
func (h *Host) RemoveHandler(proto protocol.ID) { h.h.RemoveStreamHandler(proto) }

// serve wraps handler with the gate (when gated), the latency shim and the
// accounting that lets Close wait for running handlers.
func (h *Host) serve(gated bool, handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		remote := s.Conn().RemotePeer()
		if gated && !h.Allowed(remote) {
			h.log.Debug("p2p stream from non-member reset", "peer", remote, "protocol", s.Protocol())
			s.Reset()
			return
		}
		h.mu.Lock()
		if h.closing {
			h.mu.Unlock()
			s.Reset()
			return
		}
		h.handlers.Add(1)
		h.mu.Unlock()
		defer h.handlers.Done()
		handler(h.delay(s))
	}
}

// NewStream opens a stream to peer p speaking the first of protos the peer
// supports, dialing p if needed. The stream is delayed by
// Config.ExtraLatency. It is not gated: the remote decides whom it accepts.
func (h *Host) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	s, err := h.h.NewStream(ctx, p, protos...)
	if err != nil {
		return nil, fmt.Errorf("p2p: open %v to %s: %s", protos, p, oneLine(err))
	}
	return h.delay(s), nil
}

// delay applies Config.ExtraLatency to s.
func (h *Host) delay(s network.Stream) network.Stream {
	if h.cfg.ExtraLatency == nil {
		return s
	}
	return DelayStream(s, h.cfg.ExtraLatency(s.Conn().RemotePeer()))
}
