package p2p

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// oneConn waits until h has exactly one connection to p and returns what
// it negotiated.
func oneConn(t testing.TB, h *Host, p peer.ID) ConnSecurity {
	t.Helper()
	var got []ConnSecurity
	eventually(t, 5*time.Second, func() error {
		if got = h.ConnSecurity(p); len(got) != 1 {
			return fmt.Errorf("%d connections to %s, want 1", len(got), p)
		}
		return nil
	})
	return got[0]
}

// checkPQ asserts that cs is a TLS 1.3 connection whose keys came from the
// hybrid X25519MLKEM768 key exchange.
func checkPQ(t testing.TB, side string, cs ConnSecurity, transport string) {
	t.Helper()
	t.Logf("%s: %+v", side, cs)
	if cs.Transport != transport || cs.Security != libp2ptls.ID {
		t.Errorf("%s: transport %q security %q, want %q %q", side, cs.Transport, cs.Security, transport, libp2ptls.ID)
	}
	if cs.KeyExchange != "X25519MLKEM768" || !cs.PostQuantum {
		t.Errorf("%s: key exchange %q post-quantum %v, want X25519MLKEM768 true", side, cs.KeyExchange, cs.PostQuantum)
	}
	if cs.Cipher == "" {
		t.Errorf("%s: no cipher suite", side)
	}
}

// TestSecurityFungiToFungi: two fungi hosts agree on TLS 1.3 with the
// hybrid post-quantum key exchange, over TCP and over QUIC, and both sides
// can tell.
func TestSecurityFungiToFungi(t *testing.T) {
	for _, tc := range []struct {
		transport, listen, muxer string
	}{
		{"tcp", loopTCP, "/yamux/1.0.0"},
		{"quic-v1", loopQUIC, ""},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			cfg := testConfig()
			cfg.ListenAddrs = []string{tc.listen}
			a, b := newHost(t, cfg), newHost(t, cfg)
			if err := a.Connect(t.Context(), b.AddrInfo()); err != nil {
				t.Fatal(err)
			}
			for _, side := range []struct {
				name   string
				h      *Host
				remote peer.ID
				dir    network.Direction
			}{
				{"dialer", a, b.ID(), network.DirOutbound},
				{"listener", b, a.ID(), network.DirInbound},
			} {
				cs := oneConn(t, side.h, side.remote)
				checkPQ(t, side.name, cs, tc.transport)
				if cs.Direction != side.dir || string(cs.Muxer) != tc.muxer {
					t.Errorf("%s: direction %v muxer %q, want %v %q", side.name, cs.Direction, cs.Muxer, side.dir, tc.muxer)
				}
			}
		})
	}
}

// TestSecurityNoise: a peer that speaks only Noise still gets in, and the
// host reports the connection as not post-quantum.
func TestSecurityNoise(t *testing.T) {
	cfg := testConfig()
	cfg.ListenAddrs = []string{loopTCP}
	h := newHost(t, cfg)
	stranger, err := libp2p.New(
		libp2p.Security(noise.ID, noise.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.NoListenAddrs,
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if err := stranger.Connect(t.Context(), h.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	cs := oneConn(t, h, stranger.ID())
	t.Logf("%+v", cs)
	want := ConnSecurity{Transport: "tcp", Direction: network.DirInbound, Security: noise.ID, Muxer: "/yamux/1.0.0", KeyExchange: "X25519", Cipher: "ChaCha20-Poly1305"}
	if cs != want {
		t.Errorf("got %+v, want %+v", cs, want)
	}
}

// tlsStranger starts a plain libp2p host (default TLS and Noise, TCP) that
// does not listen.
func tlsStranger(t testing.TB) host.Host {
	t.Helper()
	s, err := libp2p.New(libp2p.Transport(tcp.NewTCPTransport), libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSecurityTableNoLeak: the record of a connection goes when the
// connection does, and one that the gater refused after its handshake is
// swept, while live ones stay.
func TestSecurityTableNoLeak(t *testing.T) {
	cfg := testConfig()
	cfg.ListenAddrs = []string{loopTCP}
	h := newHost(t, cfg)

	for i := range 10 {
		s := tlsStranger(t)
		if err := s.Connect(t.Context(), h.AddrInfo()); err != nil {
			t.Fatalf("stranger %d: %v", i, err)
		}
		oneConn(t, h, s.ID())
		s.Close()
	}
	eventually(t, 5*time.Second, func() error {
		if n := h.sec.len(); n != 0 {
			return fmt.Errorf("%d handshakes recorded after the strangers left, want 0", n)
		}
		return nil
	})

	friend := tlsStranger(t)
	if err := friend.Connect(t.Context(), h.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	checkPQ(t, "friend", oneConn(t, h, friend.ID()), "tcp")

	blocked := tlsStranger(t)
	h.Block(blocked.ID())
	blocked.Connect(t.Context(), h.AddrInfo()) // refused by h's gater after the handshake
	eventually(t, 5*time.Second, func() error {
		if n := h.sec.len(); n != 2 {
			return fmt.Errorf("%d handshakes recorded, want the friend's and the refused one", n)
		}
		return nil
	})
	h.sec.mu.Lock()
	h.sec.sweep(time.Now().Add(2 * unreadGrace))
	h.sec.mu.Unlock()
	if n := h.sec.len(); n != 1 {
		t.Fatalf("%d handshakes recorded after the sweep, want the friend's", n)
	}
	checkPQ(t, "friend after sweep", oneConn(t, h, friend.ID()), "tcp")
}

// fakeTLSConn is a secure connection with a TLS state and addresses of
// its own.
type fakeTLSConn struct {
	sec.SecureConn // nil: only the methods below are called
	remote         peer.ID
	laddr, raddr   net.Addr
	closed         bool
}

func (c *fakeTLSConn) ConnectionState() tls.ConnectionState {
	return tls.ConnectionState{CurveID: tls.X25519MLKEM768, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
}
func (c *fakeTLSConn) RemotePeer() peer.ID        { return c.remote }
func (c *fakeTLSConn) LocalAddr() net.Addr        { return c.laddr }
func (c *fakeTLSConn) RemoteAddr() net.Addr       { return c.raddr }
func (c *fakeTLSConn) Read(b []byte) (int, error) { return 0, nil }
func (c *fakeTLSConn) Close() error               { c.closed = true; return nil }

// TestSecurityTableBounds: Close removes an entry (not a newer one under
// the same addresses), unread entries are swept once past the grace as
// the table grows, and the table never holds more than maxTLSConns.
func TestSecurityTableBounds(t *testing.T) {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	now := time.Unix(1e9, 0)
	tab := newSecurityTable()
	tab.now = func() time.Time { return now }
	port := 0
	conn := func() *fakeTLSConn {
		port++
		return &fakeTLSConn{remote: id, laddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4001}, raddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
	}

	first := conn()
	old := tab.record(first)
	old.Read(nil)
	if tab.len() != 1 {
		t.Fatalf("len %d after one handshake", tab.len())
	}
	// the same addresses again (a reused port): the newer entry wins and
	// the old connection's Close leaves it
	again := *first
	newer := tab.record(&again)
	old.Close()
	if !first.closed || tab.len() != 1 {
		t.Fatalf("closed %v len %d: want the old connection closed and the newer entry kept", first.closed, tab.len())
	}
	newer.Close()
	if tab.len() != 0 {
		t.Fatalf("len %d after Close, want 0", tab.len())
	}

	// never-read handshakes: kept within the grace, swept after it
	for range maxTLSConns + 100 {
		tab.record(conn())
	}
	if tab.len() != maxTLSConns {
		t.Fatalf("len %d, want the cap %d", tab.len(), maxTLSConns)
	}
	live := tab.record(conn()) // over the cap: not recorded, still usable
	live.Read(nil)
	live.Close()
	now = now.Add(unreadGrace + time.Second)
	kept := tab.record(conn())
	kept.Read(nil)
	if tab.len() != 1 {
		t.Fatalf("len %d after the grace, want only the newest", tab.len())
	}
}
