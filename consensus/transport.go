package consensus

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// RaftProtocol carries raft's RPCs (hashicorp/raft's NetworkTransport
// framing) over libp2p streams. Server addresses are peer ids.
const RaftProtocol protocol.ID = "/fungi/raft/1.0.0"

// streamLayer is a raft.StreamLayer over libp2p streams, as
// go-libp2p-raft's, with two additions: an inbound stream is reset unless
// its peer passes allow (a member, a server of the raft configuration or a
// peer this node is joining through), so a stranger cannot feed raft an
// AppendEntries with a higher term; and every byte read from a peer marks
// it as alive for Status and the promotion policy.
type streamLayer struct {
	h       host.Host
	allow   func(peer.ID) bool
	prepare func(peer.ID) // before dialing: give libp2p the peer's addresses
	contact *contactTable
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	refused atomic.Uint64
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(h host.Host, allow func(peer.ID) bool, prepare func(peer.ID), contact *contactTable) *streamLayer {
	l := &streamLayer{h: h, allow: allow, prepare: prepare, contact: contact, conns: make(chan net.Conn), done: make(chan struct{})}
	h.SetStreamHandler(RaftProtocol, l.handle)
	return l
}

func (l *streamLayer) handle(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !l.allow(p) {
		l.refused.Add(1)
		s.Reset()
		return
	}
	select {
	case l.conns <- l.wrap(s):
	case <-l.done:
		s.Reset()
	}
}

func (l *streamLayer) wrap(s network.Stream) net.Conn {
	return &streamConn{Stream: s, seen: l.contact.entry(s.Conn().RemotePeer())}
}

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamLayer) Close() error {
	l.once.Do(func() {
		l.h.RemoveStreamHandler(RaftProtocol)
		close(l.done)
	})
	return nil
}

func (l *streamLayer) Addr() net.Addr { return peerAddr(l.h.ID()) }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	pid, err := peer.Decode(string(address))
	if err != nil {
		return nil, err
	}
	l.prepare(pid)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := l.h.NewStream(ctx, pid, RaftProtocol)
	if err != nil {
		return nil, err
	}
	return l.wrap(s), nil
}

// peerAddr is a net.Addr naming a peer.
type peerAddr peer.ID

func (a peerAddr) Network() string { return "libp2p" }
func (a peerAddr) String() string  { return peer.ID(a).String() }

type streamConn struct {
	network.Stream
	seen *atomic.Int64 // unix nanoseconds of the last byte from the peer
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	if n > 0 {
		c.seen.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *streamConn) LocalAddr() net.Addr  { return peerAddr(c.Conn().LocalPeer()) }
func (c *streamConn) RemoteAddr() net.Addr { return peerAddr(c.Conn().RemotePeer()) }

// contactTable records when each peer was last heard from over raft.
type contactTable struct {
	mu    sync.Mutex
	peers map[peer.ID]*atomic.Int64
}

func newContactTable() *contactTable {
	return &contactTable{peers: make(map[peer.ID]*atomic.Int64)}
}

func (t *contactTable) entry(p peer.ID) *atomic.Int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[p]
	if !ok {
		e = new(atomic.Int64)
		t.peers[p] = e
	}
	return e
}

// last returns when p was last heard from (zero: never).
func (t *contactTable) last(p peer.ID) time.Time {
	t.mu.Lock()
	e, ok := t.peers[p]
	t.mu.Unlock()
	if !ok || e.Load() == 0 {
		return time.Time{}
	}
	return time.Unix(0, e.Load())
}
