package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"
)

const holdProto = protocol.ID("/fungi-test/hold/1.0.0")

// limitsHost starts a host on loopback TCP with a 1 GiB memory budget
// whose holdProto handler echoes one byte and then holds the stream until
// the peer closes or resets it.
func limitsHost(t testing.TB, mut func(*Config)) *Host {
	t.Helper()
	cfg := testConfig()
	cfg.ListenAddrs = []string{loopTCP}
	cfg.MaxMemory = 1 << 30
	if mut != nil {
		mut(&cfg)
	}
	h := newHost(t, cfg)
	h.Handle(holdProto, func(s network.Stream) {
		var b [1]byte
		if _, err := io.ReadFull(s, b[:]); err != nil {
			s.Reset()
			return
		}
		if _, err := s.Write(b[:]); err != nil {
			s.Reset()
			return
		}
		io.Copy(io.Discard, s)
		s.Close()
	})
	return h
}

// gateSet is a membership gate tests change while the host reads it.
type gateSet struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func (g *gateSet) allow(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ids[p]
}

func (g *gateSet) set(p peer.ID, member bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ids == nil {
		g.ids = make(map[peer.ID]bool)
	}
	g.ids[p] = member
}

// plainPeer starts a plain libp2p host (TCP, not listening) connected to
// h: a stock peer, a stranger unless h's gate lets it in.
func plainPeer(t testing.TB, h *Host) host.Host {
	t.Helper()
	p, err := libp2p.New(libp2p.Transport(tcp.NewTCPTransport), libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Connect(t.Context(), h.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if h.LibP2P().Network().Connectedness(p.ID()) != network.Connected {
			return fmt.Errorf("%s not connected yet", p.ID())
		}
		return nil
	})
	return p
}

// hold opens a holdProto stream from p to h and waits for the echo: an
// error means the stream was refused.
func hold(ctx context.Context, p host.Host, h *Host) (network.Stream, error) {
	s, err := p.NewStream(ctx, h.ID(), holdProto)
	if err != nil {
		return nil, err
	}
	s.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := s.Write([]byte{7}); err != nil {
		s.Reset()
		return nil, err
	}
	if _, err := io.ReadFull(s, b[:]); err != nil {
		s.Reset()
		return nil, err
	}
	s.SetDeadline(time.Time{})
	return s, nil
}

// holdMany opens n streams one after the other and returns those that
// the host accepted and the first refusal.
func holdMany(t testing.TB, p host.Host, h *Host, n int) (held []network.Stream, firstErr error) {
	t.Helper()
	for range n {
		s, err := hold(t.Context(), p, h)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		held = append(held, s)
	}
	t.Cleanup(func() {
		for _, s := range held {
			s.Reset()
		}
	})
	return held, firstErr
}

// peerScope returns the host's resource-manager view of peer p: its usage
// and its current limit.
func peerScope(t testing.TB, h *Host, p peer.ID) (network.ScopeStat, rcmgr.Limit) {
	t.Helper()
	var st network.ScopeStat
	var lim rcmgr.Limit
	err := h.LibP2P().Network().ResourceManager().ViewPeer(p, func(s network.PeerScope) error {
		st = s.Stat()
		sl, ok := s.(rcmgr.ResourceScopeLimiter)
		if !ok {
			return fmt.Errorf("peer scope %T has no limit", s)
		}
		lim = sl.Limit()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, lim
}

// TestLimitsStranger: a stranger opening more streams than the per-peer
// limit gets the extra ones refused, its streams and memory stay within
// its peer limits, another peer is still served, and the first one is
// served again once it let some streams go.
func TestLimitsStranger(t *testing.T) {
	h := limitsHost(t, nil)
	h.SetAllowed(func(peer.ID) bool { return false }) // everyone is a stranger
	lim := newLimitSet(h.cfg).stranger
	s1 := plainPeer(t, h)

	const extra = 16
	held, err := holdMany(t, s1, h, strangerStreams+extra)
	t.Logf("stranger: %d streams held, first refusal: %v", len(held), err)
	if len(held) > strangerStreams || len(held) < strangerStreams/2 {
		t.Errorf("stranger holds %d streams, want at most %d (and most of them)", len(held), strangerStreams)
	}
	if refused := strangerStreams + extra - len(held); refused < extra {
		t.Errorf("%d streams refused, want at least %d", refused, extra)
	}
	st, l := peerScope(t, h, s1.ID())
	t.Logf("stranger's scope: %+v", st)
	if !sameLimit(l, lim) {
		t.Errorf("stranger's limit %+v, want %+v", l, lim)
	}
	if st.NumStreamsInbound > strangerStreams {
		t.Errorf("%d inbound streams of the stranger, limit %d", st.NumStreamsInbound, strangerStreams)
	}
	if st.Memory <= 0 || st.Memory > lim.Memory {
		t.Errorf("stranger's memory %d, want within (0, %d]", st.Memory, lim.Memory)
	}
	if h.cm.IsProtected(s1.ID(), memberTag) {
		t.Error("stranger protected from trimming")
	}

	s2 := plainPeer(t, h)
	if _, err := hold(t.Context(), s2, h); err != nil {
		t.Fatalf("second stranger refused: %v", err)
	}

	for _, s := range held[:min(8, len(held))] {
		s.Reset()
	}
	eventually(t, 5*time.Second, func() error {
		s, err := hold(t.Context(), s1, h)
		if err != nil {
			return err
		}
		return s.Reset()
	})
}

// TestLimitsMember: a member gets a member's limits, protection, and more
// streams than a stranger could open; RecheckMembers takes both away when
// the gate changes, and new streams over the stranger's limit are refused.
func TestLimitsMember(t *testing.T) {
	h := limitsHost(t, nil)
	ls := newLimitSet(h.cfg)
	var gate gateSet
	h.SetAllowed(gate.allow)
	m := plainPeer(t, h) // connected as a stranger
	if _, l := peerScope(t, h, m.ID()); !sameLimit(l, ls.stranger) {
		t.Fatalf("stranger's limit %+v, want %+v", l, ls.stranger)
	}
	gate.set(m.ID(), true)
	h.RecheckMembers()
	if _, l := peerScope(t, h, m.ID()); !sameLimit(l, ls.member) {
		t.Fatalf("member's limit %+v, want %+v", l, ls.member)
	}
	if !h.cm.IsProtected(m.ID(), memberTag) {
		t.Fatal("member not protected")
	}

	n := strangerStreams + 16
	held, err := holdMany(t, m, h, n)
	if len(held) != n {
		t.Fatalf("member holds %d of %d streams: %v", len(held), n, err)
	}
	st, _ := peerScope(t, h, m.ID())
	t.Logf("member's scope: %+v", st)

	gate.set(m.ID(), false)
	h.RecheckMembers()
	if _, l := peerScope(t, h, m.ID()); !sameLimit(l, ls.stranger) {
		t.Errorf("former member's limit %+v, want a stranger's", l)
	}
	if h.cm.IsProtected(m.ID(), memberTag) {
		t.Error("former member still protected")
	}
	if s, err := hold(t.Context(), m, h); err == nil {
		s.Reset()
		t.Errorf("former member over the stranger's limit (%d streams) got another", len(held))
	}
}

// TestLimitsNoGate: without a gate every peer is let in, hence
// protected, but keeps a stranger's limits.
func TestLimitsNoGate(t *testing.T) {
	h := limitsHost(t, nil)
	p := plainPeer(t, h)
	s, err := hold(t.Context(), p, h) // the connection was checked before its first stream
	if err != nil {
		t.Fatal(err)
	}
	s.Reset()
	if !h.cm.IsProtected(p.ID(), memberTag) {
		t.Error("peer not protected without a gate")
	}
	if _, l := peerScope(t, h, p.ID()); !sameLimit(l, newLimitSet(h.cfg).stranger) {
		t.Errorf("limit %+v without a gate, want a stranger's", l)
	}
}

// TestLimitsTrimKeepsMembers: trimming the connections down to ConnLow
// closes the strangers' and keeps the member's, even though the member is
// the peer the connection manager values least; the protection goes with
// the member's last connection and membership is checked again at each
// connection.
//
// The trim is BasicConnMgr.ForceTrim: TrimOpenConns (what the connection
// manager runs above ConnHigh) spares every peer connected for less than
// its one-minute grace period; both skip protected peers alike.
func TestLimitsTrimKeepsMembers(t *testing.T) {
	h := limitsHost(t, func(c *Config) { c.ConnLow, c.ConnHigh = 1, 2 })
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	member, _ := peer.IDFromPrivateKey(priv)
	var gate gateSet
	gate.set(member, true)
	h.SetAllowed(gate.allow)

	m, err := libp2p.New(libp2p.Identity(priv), libp2p.Transport(tcp.NewTCPTransport), libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	// connect connects the member and waits until the host checked the
	// connection: it does before accepting the connection's first stream.
	connect := func() {
		t.Helper()
		if err := m.Connect(t.Context(), h.AddrInfo()); err != nil {
			t.Fatal(err)
		}
		s, err := hold(t.Context(), m, h)
		if err != nil {
			t.Fatal(err)
		}
		s.Reset()
	}
	connect()
	var strangers []host.Host
	for range 6 {
		s := plainPeer(t, h)
		// valued above the member: an unprotected member goes first
		h.cm.TagPeer(s.ID(), "test-busy", 100)
		strangers = append(strangers, s)
	}
	if !h.cm.IsProtected(member, memberTag) {
		t.Fatal("member not protected")
	}
	for _, s := range strangers {
		if h.cm.IsProtected(s.ID(), memberTag) {
			t.Fatalf("stranger %s protected", s.ID())
		}
	}

	h.cm.ForceTrim()
	net := h.LibP2P().Network()
	eventually(t, 5*time.Second, func() error {
		for _, s := range strangers {
			if net.Connectedness(s.ID()) == network.Connected {
				return fmt.Errorf("stranger %s still connected", s.ID())
			}
		}
		return nil
	})
	if net.Connectedness(member) != network.Connected {
		t.Fatal("member's connection trimmed")
	}

	// The last connection closing lifts the protection.
	m.Network().ClosePeer(h.ID())
	eventually(t, 5*time.Second, func() error {
		if h.cm.IsProtected(member, memberTag) {
			return errors.New("member protected after disconnecting")
		}
		return nil
	})
	// Membership is checked again at each connection.
	gate.set(member, false)
	connect()
	if h.cm.IsProtected(member, memberTag) {
		t.Error("peer no longer a member protected after reconnecting")
	}
	m.Network().ClosePeer(h.ID())
	gate.set(member, true)
	connect()
	if !h.cm.IsProtected(member, memberTag) {
		t.Error("member not protected after reconnecting")
	}
}

// TestLimitsConfig: the new fields' validation, their defaults, and the
// limits they give.
// The budgets' defaults and what they scale to (their validation is in
// TestConfigValidate).
func TestLimitsConfig(t *testing.T) {
	d := Config{}.withDefaults()
	t.Logf("defaults here: MaxMemory %d MiB, MaxFileDescriptors %d", d.MaxMemory>>20, d.MaxFileDescriptors)
	if d.MaxMemory < MinMaxMemory || d.MaxMemory > defaultMaxMemoryCap {
		t.Errorf("default MaxMemory %d, want within [%d, %d]", d.MaxMemory, MinMaxMemory, defaultMaxMemoryCap)
	}
	if d.MaxFileDescriptors < MinMaxFileDescriptors {
		t.Errorf("default MaxFileDescriptors %d", d.MaxFileDescriptors)
	}
	small := testConfig()
	small.MaxMemory, small.MaxFileDescriptors = MinMaxMemory, MinMaxFileDescriptors
	if err := small.Validate(); err != nil {
		t.Errorf("the smallest budgets: %v", err)
	}

	frag := defaultFragLimits()
	for _, mem := range []int64{MinMaxMemory, 256 << 20, 1 << 30, 2 << 30, 16 << 30} {
		t.Run(fmt.Sprintf("%dMiB", mem>>20), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxMemory, cfg.MaxFileDescriptors = mem, 4096
			ls := newLimitSet(cfg.withDefaults())
			sys := ls.config.ToPartialLimitConfig().System
			t.Logf("system %+v\nstranger %+v\nmember %+v", sys, ls.stranger, ls.member)
			if int64(sys.Memory) != mem || int(sys.FD) != 4096 {
				t.Errorf("system memory %d, FDs %d: want the budgets %d, 4096", sys.Memory, sys.FD, mem)
			}
			if int(sys.ConnsInbound) < 2*DefaultConnHigh {
				t.Errorf("system inbound connections %d, below twice ConnHigh", sys.ConnsInbound)
			}
			// A stranger: a small share of the host.
			if s := ls.stranger; s.Memory > mem/8 || s.Memory > strangerMemoryMax || s.StreamsInbound > int(sys.StreamsInbound)/16 {
				t.Errorf("stranger's limits %+v: too large a share of %+v", s, sys)
			}
			// The fragment exchange's streams from one peer, with room for
			// RAFT, the DHT, bitswap and adds, within even a stranger's.
			if ls.stranger.StreamsInbound < 4*frag.peerStreams {
				t.Errorf("stranger's %d inbound streams: not 4 times the fragment exchange's %d", ls.stranger.StreamsInbound, frag.peerStreams)
			}
			if m := ls.member; m.StreamsInbound <= ls.stranger.StreamsInbound || m.Memory <= ls.stranger.Memory || m.Memory > mem/2 {
				t.Errorf("member's limits %+v vs stranger's %+v", m, ls.stranger)
			}
		})
	}
}

// TestLimitsMetrics: with a registerer, the resource manager's metrics
// are in it.
func TestLimitsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	limitsHost(t, func(c *Config) { c.Metrics = reg })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "libp2p_rcmgr_") {
			return
		}
	}
	t.Error("no libp2p_rcmgr_ metrics registered")
}
