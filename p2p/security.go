package p2p

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/quic-go/quic-go"
)

// ConnSecurity is what one live connection negotiated: which handshake
// set up its keys and whether traffic recorded today stays secret against
// a future quantum computer.
type ConnSecurity struct {
	// Transport is "tcp" or "quic-v1".
	Transport string
	// Direction says who dialed: network.DirOutbound when this host did.
	Direction network.Direction
	// Security is the security protocol: "/tls/1.0.0" or "/noise" on TCP.
	// QUIC connections run libp2p's TLS 1.3 handshake inside QUIC (libp2p
	// leaves the field empty for them); they are reported as "/tls/1.0.0".
	Security protocol.ID
	// Muxer is the stream multiplexer ("/yamux/1.0.0"); empty on QUIC,
	// which multiplexes streams itself.
	Muxer protocol.ID
	// KeyExchange is how the session keys were agreed: a TLS group as
	// crypto/tls names it ("X25519MLKEM768", "X25519", ...), "X25519" for
	// Noise, or empty when unknown (a TLS-over-TCP connection whose
	// handshake was not recorded, see securityTable).
	KeyExchange string
	// Cipher is the AEAD protecting the traffic: a TLS 1.3 suite
	// ("TLS_AES_128_GCM_SHA256"), "ChaCha20-Poly1305" for Noise, or empty
	// when unknown.
	Cipher string
	// PostQuantum is true when KeyExchange is a hybrid ML-KEM group: an
	// attacker who records the traffic today cannot decrypt it with a
	// quantum computer later. It says nothing about authentication, which
	// rests on Ed25519 peer identities (not post-quantum).
	PostQuantum bool
}

// ConnSecurity returns what each live connection to p negotiated, in no
// particular order; nil when p is not connected. Safe for concurrent use.
func (h *Host) ConnSecurity(p peer.ID) []ConnSecurity {
	var out []ConnSecurity
	for _, c := range h.h.Network().ConnsToPeer(p) {
		out = append(out, h.sec.describe(c))
	}
	return out
}

// Noise as go-libp2p runs it: Noise_XX_25519_ChaChaPoly_SHA256.
const (
	noiseKeyExchange = "X25519"
	noiseCipher      = "ChaCha20-Poly1305"
)

// postQuantum reports whether a TLS group is a hybrid of a classical ECDH
// and ML-KEM (FIPS 203): the session keys stay secret as long as either
// half holds.
func postQuantum(g tls.CurveID) bool {
	switch g {
	case tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024:
		return true
	}
	return false
}

func (cs *ConnSecurity) setTLS(group tls.CurveID, suite uint16) {
	if group != 0 {
		cs.KeyExchange = group.String()
		cs.PostQuantum = postQuantum(group)
	}
	if suite != 0 {
		cs.Cipher = tls.CipherSuiteName(suite)
	}
}

// Limits of the securityTable.
const (
	// maxTLSConns bounds the recorded TCP/TLS handshakes (~200 bytes
	// each). Past it, new connections are not recorded and report an
	// empty KeyExchange; they work as usual.
	maxTLSConns = 1 << 13
	// unreadGrace is how long a recorded handshake may go without its
	// connection being read before it is taken for one that libp2p
	// dropped after the handshake (refused by the connection gater or the
	// resource manager, which close the raw connection, not ours).
	unreadGrace = time.Minute
	minSweep    = 64
)

// securityTable records the TLS key exchange and cipher suite of each TCP
// connection secured by TLS, for ConnSecurity. libp2p keeps the *tls.Conn
// out of reach of a network.Conn, so the table wraps libp2p's TLS
// transport and records every handshake it completes, keyed by the remote
// peer and the connection's two addresses. QUIC connections need no
// record (their TLS state is reachable, see describe) and Noise has one
// fixed key exchange.
//
// An entry lives as long as its secure connection: Close removes it.
// Handshakes whose connection libp2p drops without closing ours (the gater
// or the resource manager refusing it) are never read; they are swept once
// older than unreadGrace, when the table grows. The table holds at most
// maxTLSConns entries and no reference to the connections.
type securityTable struct {
	now   func() time.Time
	grace time.Duration

	mu        sync.Mutex
	conns     map[connKey]*handshake
	nextSweep int // sweep when len(conns) reaches it
}

// connKey names a TCP connection from this host's side.
type connKey struct {
	peer         peer.ID
	laddr, raddr string // the two ends, as net.Addr strings ("127.0.0.1:4001")
}

// handshake is what one TLS handshake negotiated.
type handshake struct {
	group tls.CurveID
	suite uint16
	at    time.Time
	read  atomic.Bool // the connection was read: libp2p took it into use
}

func newSecurityTable() *securityTable {
	return &securityTable{now: time.Now, grace: unreadGrace, conns: map[connKey]*handshake{}, nextSweep: minSweep}
}

// options are the host's security transports: TLS first, then Noise.
// Whoever dials proposes its order and the other side takes the first it
// supports, so two fungi nodes, and a fungi node and Kubo (TLS first by
// default too), always agree on TLS; Noise is there for peers that speak
// nothing else. TLS because Go's TLS 1.3 offers the hybrid post-quantum
// X25519MLKEM768 key exchange, where Noise XX has X25519 alone; and TLS
// 1.3 picks AES-GCM, which AES-NI makes several times cheaper than Noise's
// ChaCha20-Poly1305 for bulk fragments.
func (t *securityTable) options() []libp2p.Option {
	return []libp2p.Option{
		libp2p.Security(libp2ptls.ID, t.newTLS),
		libp2p.Security(noise.ID, noise.New),
	}
}

// newTLS is libp2ptls.New wrapped to record handshakes; libp2p's fx
// injects its arguments as it does libp2ptls.New's.
func (t *securityTable) newTLS(id protocol.ID, priv crypto.PrivKey, muxers []tptu.StreamMuxer) (*recordingTLS, error) {
	tr, err := libp2ptls.New(id, priv, muxers)
	if err != nil {
		return nil, err
	}
	return &recordingTLS{tr: tr, table: t}, nil
}

// recordingTLS is libp2p's TLS transport recording each handshake in
// table.
type recordingTLS struct {
	tr    *libp2ptls.Transport
	table *securityTable
}

var _ sec.SecureTransport = (*recordingTLS)(nil)

func (r *recordingTLS) ID() protocol.ID { return r.tr.ID() }

func (r *recordingTLS) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	sc, err := r.tr.SecureInbound(ctx, insecure, p)
	if err != nil {
		return nil, err
	}
	return r.table.record(sc), nil
}

func (r *recordingTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	sc, err := r.tr.SecureOutbound(ctx, insecure, p)
	if err != nil {
		return nil, err
	}
	return r.table.record(sc), nil
}

// recordedConn is a TLS connection whose handshake is in table.
type recordedConn struct {
	sec.SecureConn
	table *securityTable
	key   connKey
	hs    *handshake
}

func (c *recordedConn) Read(b []byte) (int, error) {
	if !c.hs.read.Load() {
		c.hs.read.Store(true)
	}
	return c.SecureConn.Read(b)
}

func (c *recordedConn) Close() error {
	c.table.remove(c.key, c.hs)
	return c.SecureConn.Close()
}

// record notes what sc's handshake negotiated and returns sc wrapped so
// that closing it removes the note.
func (t *securityTable) record(sc sec.SecureConn) sec.SecureConn {
	st, ok := sc.(interface{ ConnectionState() tls.ConnectionState })
	if !ok { // not go-libp2p's TLS connection: nothing to record
		return sc
	}
	cs := st.ConnectionState()
	now := t.now()
	c := &recordedConn{
		SecureConn: sc,
		table:      t,
		key:        connKey{peer: sc.RemotePeer(), laddr: sc.LocalAddr().String(), raddr: sc.RemoteAddr().String()},
		hs:         &handshake{group: cs.CurveID, suite: cs.CipherSuite, at: now},
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) >= t.nextSweep {
		t.sweep(now)
		t.nextSweep = min(max(minSweep, 2*len(t.conns)), maxTLSConns)
	}
	if len(t.conns) < maxTLSConns {
		t.conns[c.key] = c.hs
	}
	return c
}

// sweep drops the handshakes of connections libp2p never took into use.
// t.mu is held.
func (t *securityTable) sweep(now time.Time) {
	for k, hs := range t.conns {
		if !hs.read.Load() && now.Sub(hs.at) > t.grace {
			delete(t.conns, k)
		}
	}
}

// remove drops the handshake of a closed connection, unless a newer
// connection with the same addresses replaced it.
func (t *securityTable) remove(k connKey, hs *handshake) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[k] == hs {
		delete(t.conns, k)
	}
}

// len returns the number of recorded handshakes.
func (t *securityTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// lookup returns the recorded handshake of TCP connection c.
func (t *securityTable) lookup(c network.Conn) (*handshake, bool) {
	la, err := manet.ToNetAddr(c.LocalMultiaddr())
	if err != nil {
		return nil, false
	}
	ra, err := manet.ToNetAddr(c.RemoteMultiaddr())
	if err != nil {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	hs, ok := t.conns[connKey{peer: c.RemotePeer(), laddr: la.String(), raddr: ra.String()}]
	return hs, ok
}

// describe tells what connection c negotiated.
func (t *securityTable) describe(c network.Conn) ConnSecurity {
	st := c.ConnState()
	cs := ConnSecurity{
		Transport: st.Transport,
		Direction: c.Stat().Direction,
		Security:  st.Security,
		Muxer:     st.StreamMultiplexer,
	}
	var qc *quic.Conn
	switch {
	case st.Security == noise.ID:
		cs.KeyExchange, cs.Cipher = noiseKeyExchange, noiseCipher
	case st.Security == libp2ptls.ID:
		if hs, ok := t.lookup(c); ok {
			cs.setTLS(hs.group, hs.suite)
		}
	case c.As(&qc):
		// libp2p's QUIC: the same Go TLS 1.3 stack, inside QUIC.
		cs.Security = libp2ptls.ID
		ts := qc.ConnectionState().TLS
		cs.setTLS(ts.CurveID, ts.CipherSuite)
	}
	return cs
}
