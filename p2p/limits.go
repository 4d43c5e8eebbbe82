package p2p

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Limits for an open service. Any peer may connect (IPFS nodes fetch
// blocks over bitswap), so libp2p's resource manager bounds what the stack
// holds: memory (mostly the receive windows of streams: yamux reserves 256
// KiB per stream from the peer's scope, and grows a window up to 16 MiB
// only while the peer and the host use less than half their memory),
// streams, connections and file descriptors, for the whole host
// (Config.MaxMemory, Config.MaxFileDescriptors) and per peer.
//
// rcmgr's per-peer limits apply to every peer alike; a member is only told
// apart once it is connected. So every peer starts with the strangers'
// limits, which still fit what a member needs, and each connection of a
// peer the membership gate lets in raises its peer scope to the members'
// limits (rcmgr.ResourceScopeLimiter.SetLimit, before any of its streams is
// accepted; only once a gate is set) and protects it from the connection
// manager's trimming.
//
// Per-peer limits do not stop many strangers together: they share the
// host's budgets with the members. The connection manager trims strangers
// above ConnHigh (after their one-minute grace period), and rcmgr keeps
// libp2p's per-IP limits (8 connections per IPv4 address, a connection
// rate per subnet; loopback exempt).
//
// What a member needs, counted from the code: the fragment exchange opens
// at most 4 streams to a peer and serves at most 8 from one
// (defaultFragLimits); RAFT keeps a pool of 4 connections plus the
// heartbeat, pipeline and snapshot ones (consensus/node.go); status and
// join ask one stream at a time; each forwarded add is one stream (HTTP
// without keep-alives); the DHT, bitswap, identify and ping a few more.
// About 30 streams in each direction at once, plus one per add in flight.
const (
	// strangerStreams bounds the streams of one peer in each direction
	// (and twice that in all): about twice what a member needs, 2% of the
	// system's inbound streams at a 2 GiB budget.
	strangerStreams = 64
	// memberStreams bounds a member's streams in each direction: libp2p's
	// own per-peer default at 2 GiB.
	memberStreams = 512
	// strangerMemoryMax caps one stranger's memory, which is otherwise
	// 1/16 of Config.MaxMemory (at least 8 MiB with the smallest budget):
	// 3% of a 2 GiB budget.
	strangerMemoryMax = 64 << 20

	// MinMaxMemory and MinMaxFileDescriptors are the smallest budgets
	// Config accepts.
	MinMaxMemory          = 128 << 20
	MinMaxFileDescriptors = 64

	// defaultMaxMemoryCap caps the default memory budget; without a
	// readable RAM size the default is defaultMaxMemoryUnknown.
	defaultMaxMemoryCap     = 2 << 30
	defaultMaxMemoryUnknown = 512 << 20
	// defaultFDLimitUnknown stands for the process's file-descriptor
	// limit when it cannot be read.
	defaultFDLimitUnknown = 4096

	// memberTag is the connection manager's protection tag of members.
	memberTag = "fungi-member"
)

// limitSet is the resource manager's configuration for a Config.
type limitSet struct {
	config   rcmgr.ConcreteLimitConfig
	stranger rcmgr.BaseLimit // every peer's, rcmgr's PeerDefault
	member   rcmgr.BaseLimit // set on a member's peer scope when its connection is checked
}

// newLimitSet scales libp2p's default limits (with its default service
// limits for identify, ping, …) to cfg's memory and file-descriptor
// budgets, as Kubo does, then sets the host-wide budgets exactly and the
// per-peer limits above. cfg must have had its defaults filled in.
func newLimitSet(cfg Config) limitSet {
	mem, fds := cfg.MaxMemory, cfg.MaxFileDescriptors
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	scaled := scaling.Scale(mem, fds)
	p := scaled.ToPartialLimitConfig()

	// The scaled peer limits keep libp2p's connection and FD counts (8
	// connections, FDs in proportion to the budget).
	peerBase := p.PeerDefault.Build(rcmgr.BaseLimit{})
	stranger := peerBase
	stranger.StreamsInbound, stranger.StreamsOutbound, stranger.Streams = strangerStreams, strangerStreams, 2*strangerStreams
	stranger.Memory = min(max(mem/16, 8<<20), strangerMemoryMax)
	member := peerBase
	member.StreamsInbound, member.StreamsOutbound, member.Streams = memberStreams, memberStreams, 2*memberStreams
	member.Memory = max(mem/4, 2*stranger.Memory)
	p.PeerDefault = stranger.ToResourceLimits()
	// A peer's streams of one protocol: libp2p's default (64 + 4 per GiB
	// inbound) would cap a member below memberStreams; a stranger stays
	// bound by its peer limit. The protocols with limits of their own
	// (identify, ping, …) keep them.
	p.ProtocolPeerDefault.StreamsInbound = rcmgr.LimitVal(memberStreams)
	p.ProtocolPeerDefault.StreamsOutbound = rcmgr.LimitVal(memberStreams)
	p.ProtocolPeerDefault.Streams = rcmgr.LimitVal(2 * memberStreams)

	// Scaling adds a base of 128 MiB and 256 FDs: the budgets are exact.
	p.System.Memory = rcmgr.LimitVal64(mem)
	p.System.FD = rcmgr.LimitVal(fds)
	// Room for twice the connection manager's high watermark, as Kubo
	// leaves, so that the connection manager trims strangers before the
	// resource manager refuses anyone.
	in := max(int(p.System.ConnsInbound), 2*cfg.ConnHigh)
	p.System.ConnsInbound = rcmgr.LimitVal(in)
	p.System.Conns = rcmgr.LimitVal(in + int(p.System.ConnsOutbound))

	return limitSet{config: p.Build(scaled), stranger: stranger, member: member}
}

// limitOptions are the resource manager's options for cfg (defaults filled
// in): a resource manager with newLimitSet's limits. Its metrics go to
// cfg.Metrics with libp2p's others (libp2p registers them there); without
// a registerer they are off.
func limitOptions(cfg Config) ([]libp2p.Option, error) {
	l := newLimitSet(cfg)
	var opts []rcmgr.Option
	if cfg.Metrics == nil {
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(l.config), opts...)
	if err != nil {
		return nil, err
	}
	sys := l.config.ToPartialLimitConfig().System
	cfg.Logger.Info("p2p resource limits",
		"memory", cfg.MaxMemory, "fds", cfg.MaxFileDescriptors,
		"conns_in", int(sys.ConnsInbound), "streams_in", int(sys.StreamsInbound),
		"peer_streams", l.stranger.StreamsInbound, "peer_memory", l.stranger.Memory,
		"member_streams", l.member.StreamsInbound, "member_memory", l.member.Memory)
	return []libp2p.Option{libp2p.ResourceManager(rm)}, nil
}

// protectMembers watches connections: each new connection of a peer the
// membership gate lets in (Host.Allowed; everyone while no gate is set)
// protects the peer from the connection manager's trimming and, once a
// gate is set, raises its resource limits to a member's; a connection of
// any other peer lifts both. The last connection closing lifts the
// protection. Membership is thus re-evaluated at every connection;
// RecheckMembers does it for the peers connected now.
func (h *Host) protectMembers() {
	ml := h.memberLimits()
	h.h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) { ml.check(c.RemotePeer()) },
		DisconnectedF: func(n network.Network, c network.Conn) {
			p := c.RemotePeer()
			if len(n.ConnsToPeer(p)) > 0 {
				return
			}
			h.cm.Unprotect(p, memberTag)
			// A connection that opened meanwhile may have been checked
			// before the Unprotect: check again.
			if len(n.ConnsToPeer(p)) > 0 {
				ml.check(p)
			}
		},
	})
}

// RecheckMembers re-evaluates every connected peer against the membership
// gate, as a new connection would: members are protected from trimming and
// get a member's resource limits, the others lose both. Connections are
// checked as they open; call it after the gate's answers changed (a member
// joined or left) to apply the change to the peers connected now. Safe for
// concurrent use.
func (h *Host) RecheckMembers() {
	ml := h.memberLimits()
	for _, p := range h.h.Network().Peers() {
		ml.check(p)
	}
}

// memberLimits applies the membership of a peer to the connection manager
// and the resource manager.
type memberLimits struct {
	h                *Host
	member, stranger rcmgr.BaseLimit
}

func (h *Host) memberLimits() memberLimits {
	l := newLimitSet(h.cfg)
	return memberLimits{h: h, member: l.member, stranger: l.stranger}
}

// check protects p and gives it a member's limits when the gate lets it
// in, and takes both away otherwise. Without a gate every peer is
// protected but keeps a stranger's limits: raising everyone's would keep
// every peer's scope (see below) and bound no one more tightly. It is
// called from libp2p's notification goroutines, concurrently; it is
// idempotent.
func (ml memberLimits) check(p peer.ID) {
	want := ml.stranger
	if ml.h.Allowed(p) {
		ml.h.cm.Protect(p, memberTag)
		if ml.h.allowed.Load() != nil {
			want = ml.member
		}
	} else {
		ml.h.cm.Unprotect(p, memberTag)
	}
	_ = ml.h.h.Network().ResourceManager().ViewPeer(p, func(s network.PeerScope) error {
		// Set only a change: setting a limit keeps the peer's scope
		// forever (rcmgr makes it sticky), which only members' need.
		if sl, ok := s.(rcmgr.ResourceScopeLimiter); ok && !sameLimit(sl.Limit(), want) {
			sl.SetLimit(want)
		}
		return nil
	})
}

// sameLimit reports whether a and b limit alike.
func sameLimit(a rcmgr.Limit, b rcmgr.BaseLimit) bool {
	return a.GetMemoryLimit() == b.GetMemoryLimit() &&
		a.GetStreamLimit(network.DirInbound) == b.GetStreamLimit(network.DirInbound) &&
		a.GetStreamLimit(network.DirOutbound) == b.GetStreamLimit(network.DirOutbound) &&
		a.GetStreamTotalLimit() == b.GetStreamTotalLimit() &&
		a.GetConnLimit(network.DirInbound) == b.GetConnLimit(network.DirInbound) &&
		a.GetConnLimit(network.DirOutbound) == b.GetConnLimit(network.DirOutbound) &&
		a.GetConnTotalLimit() == b.GetConnTotalLimit() &&
		a.GetFDLimit() == b.GetFDLimit()
}

// defaultMaxMemory is 1/8 of the RAM (or of the cgroup's memory limit when
// lower), between MinMaxMemory and defaultMaxMemoryCap: libp2p's
// recommendation for a dedicated node, kept moderate since the node's
// block caches share the machine.
func defaultMaxMemory() int64 {
	ram := systemMemory()
	if ram <= 0 {
		return defaultMaxMemoryUnknown
	}
	return min(max(ram/8, MinMaxMemory), defaultMaxMemoryCap)
}

// systemMemory returns the RAM size from /proc/meminfo, or the memory limit
// of the cgroup /sys/fs/cgroup shows (a container's own) when lower; 0 when
// neither is readable (not Linux).
func systemMemory() int64 {
	var total int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					total = kb << 10
				}
				break
			}
		}
	}
	// cgroup v2, v1; "max" or a huge v1 value means no limit
	for _, name := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}

// defaultMaxFileDescriptors is half the process's file-descriptor limit
// (Kubo's default), at least MinMaxFileDescriptors.
func defaultMaxFileDescriptors() int {
	return max(processFDLimit()/2, MinMaxFileDescriptors)
}

// processFDLimit returns the process's soft RLIMIT_NOFILE from
// /proc/self/limits (Go raises it to the hard limit at start), or
// defaultFDLimitUnknown when it cannot be read.
func processFDLimit() int {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return defaultFDLimitUnknown
	}
	const key = "Max open files"
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			break
		}
		if f[0] == "unlimited" {
			return math.MaxInt32
		}
		if n, err := strconv.Atoi(f[0]); err == nil && n > 0 {
			return n
		}
		break
	}
	return defaultFDLimitUnknown
}
