package p2p

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// addrNetwork is the Network of the addresses of stream conns and member
// listeners.
const addrNetwork = "libp2p"

// ListenMember returns a listener whose Accept returns each inbound stream
// of proto as a net.Conn, so that a stream-oriented server (http.Server)
// can run over libp2p. proto is registered with HandleMember: streams from
// peers the gate rejects are reset before Accept sees them, and accepted
// streams carry Config.ExtraLatency.
//
// A stream waits in its libp2p handler goroutine until Accept takes it; the
// caller of Accept owns the conn and must Close it. Close unregisters proto
// and makes Accept return net.ErrClosed; streams still waiting and streams
// arriving later are reset. Accept also returns net.ErrClosed once the Host
// is closed. One listener per proto: a later ListenMember, HandleMember or
// RemoveHandler for proto takes it over (and Close still unregisters it).
func (h *Host) ListenMember(proto protocol.ID) net.Listener {
	l := &memberListener{
		h:     h,
		proto: proto,
		addr:  peerAddr{h.ID()},
		conns: make(chan *streamConn),
		done:  make(chan struct{}),
	}
	h.HandleMember(proto, l.handle)
	return l
}

// DialMember opens a stream of proto to peer p with NewStream (dialing p if
// needed, with Config.ExtraLatency) and returns it as a net.Conn, for
// http.Transport.DialContext. ctx bounds only the opening. The protocol may
// be negotiated lazily: a peer that does not serve proto, or whose gate
// rejects this host, may let the dial succeed and fail the first Read.
func (h *Host) DialMember(ctx context.Context, p peer.ID, proto protocol.ID) (net.Conn, error) {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return nil, err
	}
	return newStreamConn(s), nil
}

// PeerFromRemoteAddr returns the peer named by the address of a stream
// conn: http.Request.RemoteAddr on a server behind ListenMember, which is a
// bare peer ID. "<peer ID>:<port>", the form http.Transport gives
// DialContext, is accepted too.
func PeerFromRemoteAddr(s string) (peer.ID, error) {
	host := s
	if h, _, err := net.SplitHostPort(s); err == nil {
		host = h
	}
	id, err := peer.Decode(host)
	if err != nil {
		return "", fmt.Errorf("p2p: address %q is not a peer ID: %w", s, err)
	}
	return id, nil
}

// peerAddr is the net.Addr of one end of a stream conn: the peer's ID.
type peerAddr struct{ id peer.ID }

func (a peerAddr) Network() string { return addrNetwork }
func (a peerAddr) String() string  { return a.id.String() }

// memberListener is ListenMember's net.Listener. Its handler hands streams
// to Accept through an unbuffered channel: no backlog beyond the streams
// waiting in their handler goroutines.
type memberListener struct {
	h     *Host
	proto protocol.ID
	addr  peerAddr
	conns chan *streamConn
	done  chan struct{} // closed by Close
	once  sync.Once
}

var _ net.Listener = (*memberListener)(nil)

// handle runs on libp2p's goroutine for the stream, after the gate and the
// latency shim; it returns once Accept took the stream or it was reset.
func (l *memberListener) handle(s network.Stream) {
	select {
	case <-l.done: // a select with both ready would pick at random
		s.Reset()
		return
	default:
	}
	select {
	case l.conns <- newStreamConn(s):
	case <-l.done:
		s.Reset()
	case <-l.h.ctx.Done():
		s.Reset()
	}
}

// Accept waits for the next member stream. After Close, or once the Host is
// closed, it returns net.ErrClosed.
func (l *memberListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		select {
		case <-l.done: // taken while Close ran: treat as arriving after it
			c.s.Reset()
			return nil, net.ErrClosed
		default:
			return c, nil
		}
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.h.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close unregisters the protocol and wakes Accept. It is idempotent and
// leaves accepted conns open (http.Server closes its own).
func (l *memberListener) Close() error {
	l.once.Do(func() {
		l.h.LibP2P().RemoveStreamHandler(l.proto)
		close(l.done)
	})
	return nil
}

// Addr names the listening host's peer ID.
func (l *memberListener) Addr() net.Addr { return l.addr }

// streamConn is a libp2p stream as a net.Conn.
//
// It has no CloseWrite on purpose: http.Server half-closes a conn that has
// one and then sleeps 500 ms so that a TCP RST cannot destroy the response,
// a hazard streams do not have (closing a stream's read side does not
// discard what the peer already received).
type streamConn struct {
	s         network.Stream
	local     peerAddr
	remote    peerAddr
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*streamConn)(nil)

func newStreamConn(s network.Stream) *streamConn {
	return &streamConn{
		s:      s,
		local:  peerAddr{s.Conn().LocalPeer()},
		remote: peerAddr{s.Conn().RemotePeer()},
	}
}

// Read reads from the stream. Errors are the stream's (io.EOF after the
// peer closed, a net.Error with Timeout for a deadline), except after Close:
// net.ErrClosed.
func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.s.Read(b)
	if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// Write writes to the stream; errors are as for Read.
func (c *streamConn) Write(b []byte) (int, error) {
	n, err := c.s.Write(b)
	if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// Close closes the stream both ways, as net.Conn's Close does: buffered
// writes are flushed and end with EOF at the peer, reads and writes in
// progress return. Unlike CloseWrite, it does not wait for the peer to
// close its side, so a Read blocked on another goroutine (http.Transport's
// read loop, http.Server's background read) returns at once. It is
// idempotent; later calls return the first result.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.s.Close()
	})
	return c.closeErr
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error      { return c.s.SetDeadline(t) }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.s.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }
