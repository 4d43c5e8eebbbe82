package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
)

var (
	loopTCP  = "/ip4/127.0.0.1/tcp/0"
	loopQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
)

// testConfig listens on loopback (TCP and QUIC, free ports) and pings often.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ListenAddrs = []string{loopTCP, loopQUIC}
	cfg.PingInterval = 250 * time.Millisecond
	cfg.BootstrapTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

// newHost starts a host with a fresh key; the test closes it.
func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(t.Context(), cfg, priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func addrStrings(h *Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testCID(s string) cid.Cid {
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "identity.key")
	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Errorf("key type %v, want Ed25519", k1.Type())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Error("reloaded key differs")
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("identity dir holds %d entries, want just the key", len(ents))
	}

	for name, content := range map[string][]byte{
		"garbage": []byte("not a key\n"),
		"empty":   {},
		"huge":    bytes.Repeat([]byte{8}, maxIdentityFile+1),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateIdentity(p)
			if !errors.Is(err, ErrCorruptIdentity) {
				t.Fatalf("err = %v, want ErrCorruptIdentity", err)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q: want one line naming the file", err)
			}
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, content) {
				t.Error("corrupt key file was modified")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	const pid = "12D3KooWGRUVh7oQjzELg8VpcNi2vGFhLqJbsKZR2YiLfLs6pbaP"
	for _, tc := range []struct {
		name   string
		mut    func(*Config)
		prefix string
	}{
		{"bad listen", func(c *Config) { c.ListenAddrs = []string{"/ip4/nope"} }, `p2p: listen address "/ip4/nope": `},
		{"listen with p2p", func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/1/p2p/" + pid} }, `p2p: listen address "/ip4/127.0.0.1/tcp/1/p2p/`},
		{"listen not tcp or quic", func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/4001"} }, `p2p: listen address "/ip4/127.0.0.1/udp/4001": `},
		{"bootstrap garbage", func(c *Config) { c.Bootstrap = []string{"tcp://1.2.3.4:4001"} }, `p2p: bootstrap address "tcp://1.2.3.4:4001": `},
		{"bootstrap no peer id", func(c *Config) { c.Bootstrap = []string{"/ip4/1.2.3.4/tcp/4001"} }, `p2p: bootstrap address "/ip4/1.2.3.4/tcp/4001": `},
		{"bootstrap bad peer id", func(c *Config) { c.Bootstrap = []string{"/ip4/1.2.3.4/tcp/4001/p2p/QmNope"} }, `p2p: bootstrap address "/ip4/1.2.3.4/tcp/4001/p2p/QmNope": `},
		{"dht prefix", func(c *Config) { c.DHTPrefix = "fungi" }, `p2p: DHT prefix "fungi": `},
		{"watermarks", func(c *Config) { c.ConnLow, c.ConnHigh = 10, 5 }, `p2p: connection watermarks low=10 high=5: `},
		{"ping interval", func(c *Config) { c.PingInterval = -time.Second }, `p2p: ping interval -1s: `},
		{"negative memory", func(c *Config) { c.MaxMemory = -1 }, "p2p: max memory -1: "},
		{"small memory", func(c *Config) { c.MaxMemory = 1 << 20 }, "p2p: max memory 1048576: "},
		{"negative fds", func(c *Config) { c.MaxFileDescriptors = -1 }, "p2p: max file descriptors -1: "},
		{"few fds", func(c *Config) { c.MaxFileDescriptors = 10 }, "p2p: max file descriptors 10: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mut(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, tc.prefix) || strings.Contains(msg, "\n") || len(msg) == len(tc.prefix) {
				t.Errorf("error %q: want one line starting %q and giving a reason", msg, tc.prefix)
			}
			priv, _, _ := crypto.GenerateEd25519Key(nil)
			if _, err := New(t.Context(), cfg, priv); err == nil || err.Error() != msg {
				t.Errorf("New: %v, want the Validate error", err)
			}
		})
	}
}

func TestBootstrapUnreachable(t *testing.T) {
	// A valid peer ID at an address where nobody listens.
	other := newHost(t, testConfig())
	dead := "/ip4/127.0.0.1/tcp/1/p2p/" + other.ID().String()

	cfg := testConfig()
	cfg.Bootstrap = []string{dead}
	cfg.BootstrapTimeout = 2 * time.Second
	h := newHost(t, cfg) // not required: starts alone
	if n := len(h.LibP2P().Network().Peers()); n != 0 {
		t.Errorf("connected to %d peers", n)
	}

	cfg.RequireBootstrap = true
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	_, err := New(t.Context(), cfg, priv)
	if !errors.Is(err, ErrNoBootstrap) {
		t.Fatalf("err = %v, want ErrNoBootstrap", err)
	}
	t.Log(err)
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "p2p: no bootstrap peer reachable (tried 1): "+other.ID().String()) {
		t.Errorf("error %q: want one line naming the peer", msg)
	}

	// The host's own ID in the list is skipped, so one list serves all.
	priv, _, _ = crypto.GenerateEd25519Key(nil)
	self, _ := peer.IDFromPrivateKey(priv)
	cfg = testConfig()
	cfg.RequireBootstrap = true
	cfg.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1/p2p/" + self.String()}
	h, err = New(t.Context(), cfg, priv)
	if err != nil {
		t.Fatalf("bootstrap list naming only the host itself: %v", err)
	}
	h.Close()
}

// TestCluster: five hosts that know only host 0 find each other through the
// DHT, exchange provider records and measure each other's RTT.
func TestCluster(t *testing.T) {
	const n = 5
	var mu sync.Mutex
	heard := map[peer.ID]time.Duration{} // host 0's OnRTT
	cfg0 := testConfig()
	cfg0.OnRTT = func(p peer.ID, rtt time.Duration) {
		mu.Lock()
		heard[p] = rtt
		mu.Unlock()
	}
	hosts := []*Host{newHost(t, cfg0)}
	for i := 1; i < n; i++ {
		cfg := testConfig()
		cfg.RequireBootstrap = true
		cfg.Bootstrap = addrStrings(hosts[0])
		if i == n-1 {
			cfg.ListenAddrs = []string{loopQUIC} // one QUIC-only host
		}
		hosts = append(hosts, newHost(t, cfg))
	}

	ctx := t.Context()
	for i, h := range hosts {
		for j, o := range hosts {
			if i == j {
				continue
			}
			eventually(t, 15*time.Second, func() error {
				ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				ai, err := h.FindPeer(ctx, o.ID())
				if err != nil {
					return fmt.Errorf("host %d find %d: %w", i, j, err)
				}
				if ai.ID != o.ID() || len(ai.Addrs) == 0 {
					return fmt.Errorf("host %d find %d: got %v", i, j, ai)
				}
				return h.Connect(ctx, ai)
			})
		}
	}
	for i, h := range hosts {
		if got := len(h.LibP2P().Network().Peers()); got != n-1 {
			t.Errorf("host %d connected to %d peers, want %d", i, got, n-1)
		}
	}

	// A peer this host has no address for is found through the DHT.
	a, b := hosts[1], hosts[n-1]
	a.LibP2P().Network().ClosePeer(b.ID())
	a.LibP2P().Peerstore().ClearAddrs(b.ID())
	eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		ai, err := a.FindPeer(ctx, b.ID())
		if err != nil {
			return err
		}
		if len(ai.Addrs) == 0 {
			return errors.New("found no addresses")
		}
		return a.Connect(ctx, ai)
	})

	// Provider records round-trip.
	c := testCID("hello fungi")
	eventually(t, 10*time.Second, func() error { return hosts[1].Provide(ctx, c) })
	for _, i := range []int{0, 3, 4} {
		eventually(t, 10*time.Second, func() error {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			provs, err := hosts[i].FindProviders(ctx, c, 5)
			if err != nil {
				return err
			}
			for _, p := range provs {
				if p.ID == hosts[1].ID() {
					return nil
				}
			}
			return fmt.Errorf("host %d: providers %v lack host 1", i, provs)
		})
	}
	if provs, err := hosts[2].FindProviders(ctx, testCID("nobody has this"), 0); err != nil || len(provs) != 0 {
		t.Errorf("FindProviders of an unknown CID = %v, %v; want none, nil", provs, err)
	}

	// RTTs are measured for every peer, and Peers is sorted by them.
	for i, h := range hosts {
		eventually(t, 10*time.Second, func() error {
			for j, o := range hosts {
				if _, ok := h.lat.get(o.ID()); !ok && i != j {
					return fmt.Errorf("host %d has no ping RTT for %d", i, j)
				}
			}
			return nil
		})
		ps := h.Peers()
		if len(ps) != n-1 {
			t.Fatalf("host %d: Peers() has %d, want %d", i, len(ps), n-1)
		}
		for _, p := range ps {
			rtt, ok := h.RTT(p.ID)
			if !ok || rtt <= 0 || !p.Connected || len(p.Addrs) == 0 {
				t.Errorf("host %d: peer %+v, RTT %v %v", i, p, rtt, ok)
			}
		}
		if !slices.IsSortedFunc(ps, func(a, b PeerInfo) int { return int(a.RTT - b.RTT) }) {
			t.Errorf("host %d: Peers() not sorted by RTT: %v", i, ps)
		}
	}
	mu.Lock()
	if len(heard) != n-1 {
		t.Errorf("OnRTT heard %d peers, want %d", len(heard), n-1)
	}
	mu.Unlock()
}

const echoProto = protocol.ID("/fungi-test/echo/1.0.0")

// echo answers every message with itself until EOF.
func echo(s network.Stream) {
	defer s.Close()
	io.Copy(s, s)
}

// roundTrip sends msg on a new stream and returns the reply.
func roundTrip(ctx context.Context, from *Host, to peer.ID, msg string) (string, error) {
	s, err := from.NewStream(ctx, to, echoProto)
	if err != nil {
		return "", err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s, msg); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

func TestMembershipGate(t *testing.T) {
	server := newHost(t, testConfig())
	member := newHost(t, testConfig())
	stranger := newHost(t, testConfig())
	var served atomic.Int32
	server.HandleMember(echoProto, func(s network.Stream) {
		served.Add(1)
		echo(s)
	})
	server.SetAllowed(func(id peer.ID) bool { return id == member.ID() })

	ctx := t.Context()
	for _, h := range []*Host{member, stranger} {
		if err := h.Connect(ctx, server.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := roundTrip(ctx, member, server.ID(), "hi"); err != nil || got != "hi" {
		t.Fatalf("member: %q, %v", got, err)
	}
	if got, err := roundTrip(ctx, stranger, server.ID(), "hi"); err == nil {
		t.Fatalf("stranger got %q through the gate", got)
	} else if !errors.Is(err, network.ErrReset) {
		t.Logf("stranger's stream failed with %v (want a reset)", err)
	}
	if n := served.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (the member's)", n)
	}
	// The DHT and ping stay open to the stranger.
	eventually(t, 5*time.Second, func() error {
		if _, ok := stranger.lat.get(server.ID()); !ok {
			return errors.New("stranger has no RTT to the server")
		}
		if _, ok := server.lat.get(stranger.ID()); !ok {
			return errors.New("server has no RTT to the stranger")
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		_, err := stranger.FindPeer(ctx, member.ID())
		return err // through the server's DHT
	})
	// Open protocols are not gated; removing the gate opens member ones.
	server.Handle("/fungi-test/open/1.0.0", echo)
	if s, err := stranger.NewStream(ctx, server.ID(), "/fungi-test/open/1.0.0"); err != nil {
		t.Errorf("open protocol: %v", err)
	} else {
		s.Write([]byte("x"))
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			t.Errorf("open protocol: %v", err)
		}
		s.Close()
	}
	server.SetAllowed(nil)
	if got, err := roundTrip(ctx, stranger, server.ID(), "now"); err != nil || got != "now" {
		t.Errorf("stranger without a gate: %q, %v", got, err)
	}
}

func TestExtraLatency(t *testing.T) {
	const d = 80 * time.Millisecond
	cfg := testConfig()
	cfg.ExtraLatency = func(peer.ID) time.Duration { return d }
	a, b := newHost(t, cfg), newHost(t, cfg)
	b.HandleMember(echoProto, echo)
	ctx := t.Context()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatal(err)
	}

	// A request/response on a fresh stream: one delay each way.
	start := time.Now()
	if got, err := roundTrip(ctx, a, b.ID(), "ping"); err != nil || got != "ping" {
		t.Fatalf("%q, %v", got, err)
	}
	if took := time.Since(start); took < 2*d {
		t.Errorf("round trip took %v, want >= %v", took, 2*d)
	}

	// Two exchanges on one long-lived stream: each pays both delays.
	s, err := a.NewStream(ctx, b.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for range 2 {
		s.Write([]byte("x"))
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 4*d {
		t.Errorf("two exchanges took %v, want >= %v", took, 4*d)
	}
	s.Close()

	// The measured RTT includes the delay both ways.
	eventually(t, 10*time.Second, func() error {
		rtt, ok := a.lat.get(b.ID())
		if !ok {
			return errors.New("no RTT yet")
		}
		if rtt < 2*d {
			return fmt.Errorf("RTT %v, want >= %v", rtt, 2*d)
		}
		return nil
	})
}

// stubStream is a network.Stream whose Read returns one byte and Write
// records when it was called.
type stubStream struct {
	network.Stream
	mu     sync.Mutex
	writes []time.Time
	reset  bool
}

func (s *stubStream) Read(b []byte) (int, error) { return 1, nil }
func (s *stubStream) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset {
		return 0, network.ErrReset
	}
	s.writes = append(s.writes, time.Now())
	return len(b), nil
}
func (s *stubStream) Reset() error {
	s.mu.Lock()
	s.reset = true
	s.mu.Unlock()
	return nil
}

func TestDelayStreamTurns(t *testing.T) {
	const d = 50 * time.Millisecond
	stub := &stubStream{}
	s := DelayStream(stub, d)
	start := time.Now()
	s.Write([]byte("a")) // first write: delayed
	s.Write([]byte("b")) // same turn: not delayed
	s.Read(make([]byte, 1))
	s.Write([]byte("c")) // answer after a read: delayed
	w := stub.writes
	if len(w) != 3 {
		t.Fatalf("%d writes", len(w))
	}
	if w[0].Sub(start) < d || w[2].Sub(w[1]) < d {
		t.Errorf("turns not delayed: %v, %v", w[0].Sub(start), w[2].Sub(w[1]))
	}
	if DelayStream(stub, 0) != network.Stream(stub) {
		t.Error("zero delay should not wrap")
	}

	// Reset cuts a pending delay short.
	stub = &stubStream{}
	s = DelayStream(stub, time.Hour)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write([]byte("x"))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Reset()
	select {
	case err := <-errc:
		if !errors.Is(err, network.ErrReset) {
			t.Errorf("write after reset: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Reset did not cut the delay short")
	}
}

func TestCloseNoLeak(t *testing.T) {
	// Warm up libp2p's process-wide goroutines (DNS resolver, QUIC
	// packet pools, ...) so they are not counted as leaks.
	warm := newHost(t, testConfig())
	warm.Close()
	base := stableGoroutines()

	var hosts []*Host
	for i := range 3 {
		cfg := testConfig()
		if i > 0 {
			cfg.Bootstrap = addrStrings(hosts[0])
			cfg.ExtraLatency = func(peer.ID) time.Duration { return time.Millisecond }
		}
		priv, _, _ := crypto.GenerateEd25519Key(nil)
		h, err := New(t.Context(), cfg, priv)
		if err != nil {
			t.Fatal(err)
		}
		h.HandleMember(echoProto, echo)
		hosts = append(hosts, h)
	}
	ctx := t.Context()
	if _, err := roundTrip(ctx, hosts[1], hosts[0].ID(), "x"); err != nil {
		t.Fatal(err)
	}
	// Leave a stream open in a handler: Close must end it.
	s, err := hosts[2].NewStream(ctx, hosts[0].ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("y"))
	io.ReadFull(s, make([]byte, 1))
	eventually(t, 5*time.Second, func() error {
		if _, ok := hosts[0].lat.get(hosts[2].ID()); !ok {
			return errors.New("no RTT yet")
		}
		return nil
	})
	for _, h := range hosts {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
	if _, err := hosts[0].FindPeer(ctx, hosts[1].ID()); !errors.Is(err, ErrClosed) {
		t.Errorf("FindPeer after Close: %v, want ErrClosed", err)
	}
	if _, err := hosts[0].NewStream(ctx, hosts[1].ID(), echoProto); !errors.Is(err, ErrClosed) {
		t.Errorf("NewStream after Close: %v, want ErrClosed", err)
	}

	const slack = 3
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			t.Logf("%d goroutines before, %d after Close", base, n)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, base, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stableGoroutines waits briefly for the goroutine count to settle.
func stableGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func TestBlock(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	ctx := t.Context()
	if err := b.Connect(ctx, a.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	a.Block(b.ID())
	if got := a.Blocked(); len(got) != 1 || got[0] != b.ID() {
		t.Errorf("Blocked() = %v", got)
	}
	if a.LibP2P().Network().Connectedness(b.ID()) == network.Connected {
		t.Error("still connected after Block")
	}
	b.LibP2P().Network().ClosePeer(a.ID())
	if err := b.Connect(ctx, a.AddrInfo()); err == nil {
		// The dial may complete on b's side before a's gate closes it.
		eventually(t, 5*time.Second, func() error {
			if a.LibP2P().Network().Connectedness(b.ID()) == network.Connected {
				return errors.New("a accepted a blocked peer")
			}
			return nil
		})
	}
	if err := a.Connect(ctx, b.AddrInfo()); err == nil {
		t.Error("a dialed a blocked peer")
	}
	a.Unblock(b.ID())
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Errorf("after Unblock: %v", err)
	}
}

func TestDHTPrefix(t *testing.T) {
	fungi := newHost(t, testConfig())
	cfg := testConfig()
	cfg.DHTPrefix = "/ipfs"
	ipfs := newHost(t, cfg)
	for _, tc := range []struct {
		h          *Host
		has, lacks protocol.ID
	}{
		{fungi, "/fungi/kad/1.0.0", "/ipfs/kad/1.0.0"},
		{ipfs, "/ipfs/kad/1.0.0", "/fungi/kad/1.0.0"},
	} {
		protos := tc.h.LibP2P().Mux().Protocols()
		if !slices.Contains(protos, tc.has) || slices.Contains(protos, tc.lacks) {
			t.Errorf("protocols %v: want %s and not %s", protos, tc.has, tc.lacks)
		}
	}
}

func TestListenAddressInUse(t *testing.T) {
	first := newHost(t, testConfig())
	var port string
	for _, a := range first.LibP2P().Addrs() {
		if p, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			port = p
		}
	}
	cfg := testConfig()
	cfg.ListenAddrs = []string{loopQUIC, "/ip4/127.0.0.1/tcp/" + port} // QUIC alone would work
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	_, err := New(t.Context(), cfg, priv)
	if err == nil {
		t.Fatal("two hosts listen on one TCP port")
	}
	t.Log(err)
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "p2p: listen address \"/ip4/127.0.0.1/tcp/"+port+"\": ") {
		t.Errorf("error %q: want one line", msg)
	}
}
