package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/fungi/fragmenttest"
)

// fragServer starts a host serving store with lim.
func fragServer(t testing.TB, cfg Config, store fungi.FragmentStore, lim fragLimits) (*Host, *fragmentServer) {
	t.Helper()
	h := newHost(t, cfg)
	return h, h.serveFragments(store, lim)
}

// fragClient starts a host connected to server.
func fragClient(t testing.TB, server *Host) *Host {
	t.Helper()
	c := newHost(t, testConfig())
	if err := c.Connect(t.Context(), server.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return c
}

func checkOneLine(t testing.TB, err error, want ...string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q: not one line", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q: want it to name %q", msg, w)
		}
	}
}

func TestFragmentStoreSuite(t *testing.T) {
	fragmenttest.Run(t, func(t *testing.T) fungi.FragmentStore {
		server, _ := fragServer(t, testConfig(), fungi.NewMemStore(), defaultFragLimits())
		return fragClient(t, server).FragmentPeer(server.ID())
	})
}

func TestFragmentPeerCached(t *testing.T) {
	a, b := newHost(t, testConfig()), newHost(t, testConfig())
	if a.FragmentPeer(b.ID()) != a.FragmentPeer(b.ID()) {
		t.Error("FragmentPeer returned two clients for one peer")
	}
	if p := a.FragmentPeer(b.ID()).Peer(); p != b.ID() {
		t.Errorf("Peer() = %s", p)
	}
	a.Close() // the cache lives on the host, so it goes with it
	_, err := a.FragmentPeer(b.ID()).GetFragment(t.Context(), []byte("k"))
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Get on a closed host: %v, want ErrClosed", err)
	}
}

func TestFragmentMembership(t *testing.T) {
	store := fungi.NewMemStore()
	server, _ := fragServer(t, testConfig(), store, defaultFragLimits())
	member, stranger := fragClient(t, server), fragClient(t, server)
	server.SetAllowed(func(id peer.ID) bool { return id == member.ID() })
	ctx := t.Context()

	m := member.FragmentPeer(server.ID())
	if err := m.PutFragment(ctx, []byte("a"), []byte("alpha")); err != nil {
		t.Fatal(err)
	}
	if err := m.PutFragments(ctx, [][]byte{[]byte("b"), []byte("c")}, [][]byte{[]byte("beta"), []byte("gamma")}); err != nil {
		t.Fatal(err)
	}

	s := stranger.FragmentPeer(server.ID())
	for name, err := range map[string]error{
		"put":      s.PutFragment(ctx, []byte("x"), []byte("evil")),
		"put-many": s.PutFragments(ctx, [][]byte{[]byte("y")}, [][]byte{[]byte("evil")}),
		"delete":   s.DeleteFragment(ctx, []byte("a")),
	} {
		if !errors.Is(err, ErrNotMember) {
			t.Errorf("stranger's %s: %v, want ErrNotMember", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
		checkOneLine(t, err, server.ID().String(), "not a cluster member")
	}
	if store.Len() != 3 {
		t.Errorf("store holds %d fragments after the stranger's writes, want 3", store.Len())
	}
	// Reads are members-only too.
	if v, err := s.GetFragment(ctx, []byte("a")); !errors.Is(err, ErrNotMember) {
		t.Errorf("stranger's get = %q, %v, want ErrNotMember", v, err)
	}
	if ok, err := s.HasFragment(ctx, []byte("b")); !errors.Is(err, ErrNotMember) {
		t.Errorf("stranger's has = %v, %v, want ErrNotMember", ok, err)
	}
	vals, errs := s.GetFragments(ctx, [][]byte{[]byte("b"), []byte("c")})
	if len(errs) != 2 || !errors.Is(errs[0], ErrNotMember) || !errors.Is(errs[1], ErrNotMember) {
		t.Errorf("stranger's get-many = %q, %v, want ErrNotMember", vals, errs)
	}
	if v, err := m.GetFragment(ctx, []byte("a")); err != nil || string(v) != "alpha" {
		t.Errorf("member's get = %q, %v", v, err)
	}
	// The gate is asked per request: letting the stranger in takes effect
	// on its open stream.
	server.SetAllowed(nil)
	if err := s.DeleteFragment(ctx, []byte("a")); err != nil {
		t.Errorf("delete once allowed: %v", err)
	}
	if store.Len() != 2 {
		t.Errorf("store holds %d fragments, want 2", store.Len())
	}
}

// onlyStore hides MemStore's DeleteFragment.
type onlyStore struct{ fungi.FragmentStore }

func TestFragmentDeleteUnsupported(t *testing.T) {
	server, _ := fragServer(t, testConfig(), onlyStore{fungi.NewMemStore()}, defaultFragLimits())
	c := fragClient(t, server).FragmentPeer(server.ID())
	err := c.DeleteFragment(t.Context(), []byte("k"))
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("delete: %v, want errors.ErrUnsupported", err)
	}
	checkOneLine(t, err, server.ID().String())
}

func fragKey(i int) []byte { return []byte(fmt.Sprintf("frag/%06d", i)) }

func fragValue(i, n int) []byte {
	v := make([]byte, n)
	for j := range v {
		v[j] = byte(i*31 + j*7)
	}
	return v
}

func TestFragmentBatches(t *testing.T) {
	store := fungi.NewMemStore()
	server, _ := fragServer(t, testConfig(), store, defaultFragLimits())
	c := fragClient(t, server).FragmentPeer(server.ID())
	ctx := t.Context()

	// 3000 small items: more than one batch by count.
	const n = 3000
	keys, vals := make([][]byte, n), make([][]byte, n)
	for i := range n {
		keys[i], vals[i] = fragKey(i), fragValue(i, 100+i%500)
	}
	if err := c.PutFragments(ctx, keys, vals); err != nil {
		t.Fatal(err)
	}
	if store.Len() != n {
		t.Fatalf("store holds %d, want %d", store.Len(), n)
	}
	ask := append(append([][]byte{}, keys...), []byte("missing"), nil, bytes.Repeat([]byte("k"), MaxFragmentKey+1))
	got, errs := c.GetFragments(ctx, ask)
	for i := range n {
		if errs[i] != nil || !bytes.Equal(got[i], vals[i]) {
			t.Fatalf("item %d: %d bytes, %v", i, len(got[i]), errs[i])
		}
	}
	if !errors.Is(errs[n], fungi.ErrFragmentNotFound) || got[n] != nil {
		t.Errorf("missing key: %q, %v", got[n], errs[n])
	}
	if errs[n+1] == nil || !errors.Is(errs[n+2], ErrFragmentTooLarge) {
		t.Errorf("bad keys: %v, %v", errs[n+1], errs[n+2])
	}
	got[0] = append(got[0], "spill"...) // a value's capacity ends with it
	if !bytes.Equal(got[1], vals[1]) {
		t.Error("appending to one value changed the next")
	}
	has, errs := c.HasFragments(ctx, ask)
	for i := range n {
		if !has[i] || errs[i] != nil {
			t.Fatalf("has item %d: %v, %v", i, has[i], errs[i])
		}
	}
	if has[n] || errs[n] != nil || errs[n+2] == nil {
		t.Errorf("has missing = %v, %v; oversized key: %v", has[n], errs[n], errs[n+2])
	}

	// 40 fragments of 1 MiB: more than one batch by bytes, and replies
	// over MaxFragmentBatchBytes, whose skipped items are asked again.
	big, bigVals := make([][]byte, 40), make([][]byte, 40)
	for i := range big {
		big[i], bigVals[i] = fragKey(n+i), fragValue(i, 1<<20+40)
	}
	if err := c.PutFragments(ctx, big, bigVals); err != nil {
		t.Fatal(err)
	}
	got, errs = c.GetFragments(ctx, big)
	for i := range big {
		if errs[i] != nil || !bytes.Equal(got[i], bigVals[i]) {
			t.Fatalf("big item %d: %d bytes, %v", i, len(got[i]), errs[i])
		}
	}

	// Nothing of a batch with an item over the limits is sent.
	err := c.PutFragments(ctx, [][]byte{[]byte("ok"), []byte("too big")}, [][]byte{[]byte("v"), make([]byte, MaxFragmentSize+1)})
	if !errors.Is(err, ErrFragmentTooLarge) {
		t.Errorf("put-many with an oversized value: %v", err)
	}
	if ok, _ := c.HasFragment(ctx, []byte("ok")); ok {
		t.Error("part of a refused batch was stored")
	}
	if err := c.PutFragments(ctx, keys[:2], vals[:1]); err == nil {
		t.Error("put-many of 2 keys and 1 value accepted")
	}
	if vals, errs := c.GetFragments(ctx, nil); len(vals) != 0 || len(errs) != 0 {
		t.Error("get-many of nothing returned something")
	}
}

// gateStore blocks gets of keys starting with "slow" until release is
// closed, and counts the calls it is blocking.
type gateStore struct {
	*fungi.MemStore
	release chan struct{}
	in      atomic.Int32
	maxIn   atomic.Int32
}

func newGateStore() *gateStore {
	return &gateStore{MemStore: fungi.NewMemStore(), release: make(chan struct{})}
}

func (s *gateStore) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	if bytes.HasPrefix(key, []byte("slow")) {
		n := s.in.Add(1)
		defer s.in.Add(-1)
		for {
			m := s.maxIn.Load()
			if n <= m || s.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.MemStore.GetFragment(ctx, key)
}

// TestFragmentPipelining: on one stream, a request answered late does not
// hold up the ones after it, and a cancelled caller returns at once while
// the stream goes on.
func TestFragmentPipelining(t *testing.T) {
	store := newGateStore()
	server, _ := fragServer(t, testConfig(), store, defaultFragLimits())
	client := fragClient(t, server)
	lim := defaultFragLimits()
	lim.streams = 1
	c := newFragmentClient(client, server.ID(), lim)
	ctx := t.Context()
	store.PutFragment(ctx, []byte("slow"), []byte("tortoise"))
	store.PutFragment(ctx, []byte("fast"), []byte("hare"))

	slow := make(chan error, 1)
	go func() {
		v, err := c.GetFragment(ctx, []byte("slow"))
		if err == nil && string(v) != "tortoise" {
			err = fmt.Errorf("got %q", v)
		}
		slow <- err
	}()
	eventually(t, 5*time.Second, func() error {
		if store.in.Load() != 1 {
			return errors.New("slow get not in the store yet")
		}
		return nil
	})
	for range 20 { // answered while the slow one waits: out of order
		if v, err := c.GetFragment(ctx, []byte("fast")); err != nil || string(v) != "hare" {
			t.Fatalf("fast get = %q, %v", v, err)
		}
	}

	// A cancelled call returns promptly; its late answer is dropped.
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() {
		_, err := c.GetFragment(cctx, []byte("slow-too"))
		cancelled <- err
	}()
	eventually(t, 5*time.Second, func() error {
		if store.in.Load() != 2 {
			return errors.New("second slow get not in the store yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled get: %v, want context.Canceled", err)
		}
		checkOneLine(t, err, server.ID().String())
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled get did not return")
	}
	if _, err := c.GetFragment(cctx, []byte("fast")); !errors.Is(err, context.Canceled) {
		t.Errorf("get with a cancelled context: %v", err)
	}
	close(store.release)
	if err := <-slow; err != nil {
		t.Errorf("slow get: %v", err)
	}
	if v, err := c.GetFragment(ctx, []byte("fast")); err != nil || string(v) != "hare" {
		t.Errorf("get after the cancellation = %q, %v", v, err)
	}
	if n := c.openStreams(); n != 1 {
		t.Errorf("%d streams, want the one", n)
	}
}

// TestFragmentServerInFlight: the server serves at most inFlight requests
// of a stream at once and reads no more meanwhile.
func TestFragmentServerInFlight(t *testing.T) {
	store := newGateStore()
	lim := defaultFragLimits()
	lim.inFlight = 3
	server, _ := fragServer(t, testConfig(), store, lim)
	store.PutFragment(t.Context(), []byte("slow"), []byte("v"))
	r := dialRaw(t, fragClient(t, server), server.ID(), true)
	for id := range uint32(10) {
		r.request(id, fragRequest{op: opGet, keys: [][]byte{[]byte("slow")}})
	}
	r.flush()
	eventually(t, 5*time.Second, func() error {
		if n := store.in.Load(); n != 3 {
			return fmt.Errorf("%d gets in the store, want 3", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // would a fourth come?
	close(store.release)
	seen := map[uint32]bool{}
	for range 10 {
		hdr, rep := r.reply()
		if rep.status != stOK || string(rep.value) != "v" {
			t.Fatalf("reply %d: %+v", hdr.id, rep)
		}
		seen[hdr.id] = true
	}
	if len(seen) != 10 {
		t.Errorf("replies to %d distinct ids, want 10", len(seen))
	}
	if m := store.maxIn.Load(); m != 3 {
		t.Errorf("at most %d gets in the store at once, want 3", m)
	}
}

func TestFragmentConcurrentCallers(t *testing.T) {
	store := fungi.NewMemStore()
	server, srv := fragServer(t, testConfig(), store, defaultFragLimits())
	client := fragClient(t, server)
	c := client.FragmentPeer(server.ID())
	ctx := t.Context()

	const callers, rounds = 200, 10
	var wg sync.WaitGroup
	var maxStreams atomic.Int32
	errc := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			var keys [][]byte
			for i := range rounds {
				k := []byte(fmt.Sprintf("caller%03d/%d", g, i))
				v := fragValue(g+i, 1000+g*37%5000)
				if err := c.PutFragment(ctx, k, v); err != nil {
					errc <- err
					return
				}
				got, err := c.GetFragment(ctx, k)
				if err != nil || !bytes.Equal(got, v) {
					errc <- fmt.Errorf("%s: %d bytes, %v", k, len(got), err)
					return
				}
				if ok, err := c.HasFragment(ctx, k); !ok || err != nil {
					errc <- fmt.Errorf("has %s = %v, %v", k, ok, err)
					return
				}
				keys = append(keys, k)
				if n := int32(srv.peerStreams(client.ID())); n > maxStreams.Load() {
					maxStreams.Store(n)
				}
			}
			_, errs := c.GetFragments(ctx, keys)
			for _, err := range errs {
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if store.Len() != callers*rounds {
		t.Errorf("store holds %d, want %d", store.Len(), callers*rounds)
	}
	t.Logf("client streams: %d open now, server saw up to %d", c.openStreams(), maxStreams.Load())
	if n := c.openStreams(); n > 4 || n < 1 {
		t.Errorf("%d client streams, want 1 to 4", n)
	}
	if n := maxStreams.Load(); n > 4 {
		t.Errorf("server saw %d streams from the client, want at most 4", n)
	}
}

// newHostKey starts a host with the given key.
func newHostKey(t testing.TB, cfg Config, priv crypto.PrivKey) *Host {
	t.Helper()
	h, err := New(t.Context(), cfg, priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestFragmentRecovery(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	cfg := testConfig()
	cfg.ListenAddrs = []string{loopTCP}
	store := fungi.NewMemStore()
	server := newHostKey(t, cfg, priv)
	server.ServeFragments(store)
	client := fragClient(t, server)
	c := client.FragmentPeer(server.ID())
	ctx := t.Context()
	if err := c.PutFragment(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}

	// Every stream reset: the connection is closed under the client.
	server.LibP2P().Network().ClosePeer(client.ID())
	if v, err := c.GetFragment(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("get after the connection closed = %q, %v", v, err)
	}

	// The server restarts (same identity and address, same store).
	var addrs []string
	for _, a := range server.LibP2P().Addrs() {
		addrs = append(addrs, a.String())
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetFragment(ctx, []byte("k")); err == nil {
		t.Fatal("get from a closed server succeeded")
	} else {
		t.Logf("server down: %v", err)
		checkOneLine(t, err, server.ID().String())
	}
	if sw, ok := client.LibP2P().Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(server.ID()) // the failed dial above
	}
	cfg.ListenAddrs = addrs
	again := newHostKey(t, cfg, priv)
	again.ServeFragments(store)
	eventually(t, 10*time.Second, func() error {
		v, err := c.GetFragment(ctx, []byte("k"))
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("got %q", v)
		}
		return err
	})
}

func TestFragmentIdleStreams(t *testing.T) {
	slim := defaultFragLimits()
	slim.idle = 300 * time.Millisecond
	server, srv := fragServer(t, testConfig(), fungi.NewMemStore(), slim)
	client := fragClient(t, server)
	ctx := t.Context()

	// The client closes a stream it has not used for clientIdle.
	clim := defaultFragLimits()
	clim.clientIdle = 100 * time.Millisecond
	c := newFragmentClient(client, server.ID(), clim)
	if err := c.PutFragment(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if n := c.openStreams(); n != 0 {
			return fmt.Errorf("%d idle client streams still open", n)
		}
		if n := srv.peerStreams(client.ID()); n != 0 {
			return fmt.Errorf("server still serves %d streams", n)
		}
		return nil
	})
	if v, err := c.GetFragment(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("get on a reopened stream = %q, %v", v, err)
	}

	// The server closes a stream idle for its limit; the client notices
	// and opens another when needed.
	c2 := newFragmentClient(client, server.ID(), defaultFragLimits())
	if _, err := c2.HasFragment(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if n := c2.openStreams(); n != 0 {
			return fmt.Errorf("%d client streams after the server's idle close", n)
		}
		return nil
	})
	if ok, err := c2.HasFragment(ctx, []byte("k")); err != nil || !ok {
		t.Fatalf("has after the server's idle close = %v, %v", ok, err)
	}
}

func TestFragmentClientLimits(t *testing.T) {
	store := fungi.NewMemStore()
	server, _ := fragServer(t, testConfig(), store, defaultFragLimits())
	c := fragClient(t, server).FragmentPeer(server.ID())
	ctx := t.Context()
	longKey := bytes.Repeat([]byte{'k'}, MaxFragmentKey+1)
	for name, err := range map[string]error{
		"long key":   c.PutFragment(ctx, longKey, []byte("v")),
		"long get":   func() error { _, err := c.GetFragment(ctx, longKey); return err }(),
		"huge value": c.PutFragment(ctx, []byte("k"), make([]byte, MaxFragmentSize+1)),
	} {
		if !errors.Is(err, ErrFragmentTooLarge) {
			t.Errorf("%s: %v, want ErrFragmentTooLarge", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
		checkOneLine(t, err, server.ID().String())
	}
	if err := c.PutFragment(ctx, nil, []byte("v")); err == nil {
		t.Error("empty key accepted")
	}
	// At the limits exactly, all is well.
	maxKey, maxVal := bytes.Repeat([]byte{'k'}, MaxFragmentKey), fragValue(1, MaxFragmentSize)
	if err := c.PutFragment(ctx, maxKey, maxVal); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetFragment(ctx, maxKey); err != nil || !bytes.Equal(v, maxVal) {
		t.Fatalf("get of the largest fragment: %d bytes, %v", len(v), err)
	}
	if store.Len() != 1 {
		t.Errorf("store holds %d, want 1", store.Len())
	}
}

// rawFrag speaks the wire protocol by hand.
type rawFrag struct {
	t  testing.TB
	s  network.Stream
	br *bufio.Reader
	bw *bufio.Writer
}

// dialRaw opens a stream to the fragment protocol of to, around the
// latency shim and the client; handshake exchanges the preambles.
func dialRaw(t testing.TB, from *Host, to peer.ID, handshake bool) *rawFrag {
	t.Helper()
	s, err := from.LibP2P().NewStream(t.Context(), to, FragmentProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	s.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawFrag{t: t, s: s, br: bufio.NewReader(s), bw: bufio.NewWriter(s)}
	if handshake {
		r.bw.WriteString(fragPreamble)
		r.flush()
		var pre [4]byte
		if _, err := io.ReadFull(r.br, pre[:]); err != nil || string(pre[:]) != fragPreamble {
			t.Fatalf("preamble %q, %v", pre, err)
		}
	}
	return r
}

func (r *rawFrag) flush() {
	r.t.Helper()
	if err := r.bw.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawFrag) request(id uint32, req fragRequest) {
	r.t.Helper()
	f := encodeRequest(req)
	if err := writeFrame(r.bw, byte(req.op), id, f.body(), f.n); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawFrag) roundTrip(id uint32, req fragRequest) fragReply {
	r.t.Helper()
	r.request(id, req)
	r.flush()
	hdr, rep := r.reply()
	if hdr.id != id || hdr.kind != byte(req.op)|replyBit {
		r.t.Fatalf("reply kind %#x id %d to kind %d id %d", hdr.kind, hdr.id, req.op, id)
	}
	return rep
}

func (r *rawFrag) reply() (frameHeader, fragReply) {
	r.t.Helper()
	hdr, body, err := readFrame(r.br, maxFrameBody)
	if err != nil {
		r.t.Fatalf("reading a reply: %v", err)
	}
	rep, err := decodeReply(hdr.kind, body)
	if err != nil {
		r.t.Fatalf("decoding a reply: %v", err)
	}
	return hdr, rep
}

// expectEnd reads until the stream ends, which must be a reset (or a close,
// if closed is set) within 10s, not a timeout, and reports stray bytes.
func (r *rawFrag) expectEnd(closed bool) {
	r.t.Helper()
	r.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, r.br)
	switch {
	case closed && err != nil:
		r.t.Errorf("stream ended with %v (after %d bytes), want a clean close", err, n)
	case !closed && (err == nil || isTimeout(err)):
		r.t.Errorf("stream ended with %v (after %d bytes), want a reset", err, n)
	case n > 0:
		r.t.Errorf("%d bytes before the end", n)
	}
}

func TestFragmentServerLimits(t *testing.T) {
	store := fungi.NewMemStore()
	server, _ := fragServer(t, testConfig(), store, defaultFragLimits())
	store.PutFragment(t.Context(), []byte("k"), []byte("value"))
	r := dialRaw(t, fragClient(t, server), server.ID(), true)

	mib := make([]byte, 1<<20)
	bigBatch := fragRequest{op: opPutMany}
	for i := range 16 {
		bigBatch.keys = append(bigBatch.keys, fragKey(i))
		bigBatch.values = append(bigBatch.values, mib)
	}
	bigBatch.keys = append(bigBatch.keys, []byte("one more"))
	bigBatch.values = append(bigBatch.values, make([]byte, 100<<10))
	manyKeys := fragRequest{op: opGetMany}
	for i := range MaxFragmentBatch + 1 {
		manyKeys.keys = append(manyKeys.keys, fragKey(i))
	}
	for _, tc := range []struct {
		name string
		req  fragRequest
		want fragStatus
	}{
		{"long key", fragRequest{op: opGet, keys: [][]byte{bytes.Repeat([]byte{1}, MaxFragmentKey+1)}}, stTooLarge},
		{"huge value", fragRequest{op: opPut, keys: [][]byte{[]byte("k2")}, values: [][]byte{make([]byte, MaxFragmentSize+1)}}, stTooLarge},
		{"too many keys", manyKeys, stTooLarge},
		{"batch over 16 MiB", bigBatch, stTooLarge},
		{"long key in a batch", fragRequest{op: opHasMany, keys: [][]byte{[]byte("a"), bytes.Repeat([]byte{1}, MaxFragmentKey+1)}}, stTooLarge},
		{"empty key", fragRequest{op: opHas, keys: [][]byte{{}}}, stInvalid},
		{"unknown op", fragRequest{op: 0x42}, stUnsupported},
		{"fine", fragRequest{op: opGet, keys: [][]byte{[]byte("k")}}, stOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rep fragReply
			if tc.req.op == 0x42 {
				writeFrame(r.bw, 0x42, 7, [][]byte{[]byte("future")}, 6)
				r.flush()
				_, rep = r.reply()
			} else {
				rep = r.roundTrip(7, tc.req)
			}
			t.Logf("status %d: %s", rep.status, rep.msg)
			if rep.status != tc.want {
				t.Errorf("status %d %q, want %d", rep.status, rep.msg, tc.want)
			}
		})
	}
	if store.Len() != 1 {
		t.Errorf("store holds %d, want 1: a refused request wrote", store.Len())
	}

	// A getmany reply stops at MaxFragmentBatchBytes; the rest is skipped.
	gm := fragRequest{op: opGetMany}
	pm := fragRequest{op: opPutMany}
	for i := range 20 {
		gm.keys = append(gm.keys, fragKey(i))
		if i < 15 {
			pm.keys, pm.values = append(pm.keys, fragKey(i)), append(pm.values, mib)
		}
	}
	if rep := r.roundTrip(8, pm); rep.status != stOK {
		t.Fatalf("put-many: %d %s", rep.status, rep.msg)
	}
	for i := 15; i < 20; i++ {
		store.PutFragment(t.Context(), fragKey(i), mib)
	}
	rep := r.roundTrip(9, gm)
	ok, skipped := 0, 0
	for i, it := range rep.items {
		switch it.status {
		case stOK:
			if skipped > 0 {
				t.Errorf("item %d answered after a skipped one", i)
			}
			ok++
		case stSkipped:
			skipped++
		default:
			t.Errorf("item %d: status %d", i, it.status)
		}
	}
	t.Logf("get-many of 20 MiB: %d answered, %d skipped", ok, skipped)
	if ok != 16 || skipped != 4 {
		t.Errorf("%d answered and %d skipped, want 16 and 4", ok, skipped)
	}
}

// TestFragmentMalformed: broken or hostile streams are reset (or closed),
// and the server goes on serving.
func TestFragmentMalformed(t *testing.T) {
	lim := defaultFragLimits()
	lim.frame = 300 * time.Millisecond
	lim.idle = 500 * time.Millisecond
	lim.peerStreams = 3
	store := fungi.NewMemStore()
	server, srv := fragServer(t, testConfig(), store, lim)
	store.PutFragment(t.Context(), []byte("k"), []byte("v"))
	good := fragClient(t, server).FragmentPeer(server.ID())
	attacker := fragClient(t, server)

	header := func(size uint32, kind byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, size)
		return append(b, kind, 0, 0, 0, 1)
	}
	for _, tc := range []struct {
		name      string
		handshake bool
		send      []byte
		closed    bool // a clean close, not a reset
	}{
		{"garbage", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		{"wrong version", false, []byte("FGF\x02"), false},
		{"huge size", true, header(0xffffffff, 1), false},
		{"size over the frame limit", true, header(5+maxFrameBody+1, 7), false},
		{"size under the header", true, header(4, 1), false},
		{"reply kind", true, append(header(6, 0x81), 0), false},
		{"batch count past the end", true, append(header(5+2, byte(opGetMany)), 0xe8, 0x07), false},
		{"key past the end", true, append(header(5+3, byte(opPut)), 0x7f, 'a', 'b'), false},
		{"trailing bytes", true, append(header(5+4, byte(opHasMany)), 1, 1, 'a', 'z'), false},
		{"bad uvarint", true, append(header(5+1, byte(opPut)), 0x80), false},
		{"stalled header", true, header(100, 1)[:3], false},
		{"stalled body", true, append(header(5+100, 1), "only some"...), false},
		{"stalled preamble", false, []byte("FG"), false},
		{"idle", true, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, attacker, server.ID(), tc.handshake)
			r.bw.Write(tc.send)
			r.bw.Flush() // may fail: the server may have reset the stream already
			r.expectEnd(tc.closed)
			if v, err := good.GetFragment(t.Context(), []byte("k")); err != nil || string(v) != "v" {
				t.Fatalf("the server stopped serving: %q, %v", v, err)
			}
		})
	}

	eventually(t, 5*time.Second, func() error {
		if n := srv.peerStreams(attacker.ID()); n != 0 {
			return fmt.Errorf("%d attacker streams still served", n)
		}
		return nil
	})
}

func TestFragmentPeerStreamCap(t *testing.T) {
	lim := defaultFragLimits()
	lim.peerStreams = 3
	store := fungi.NewMemStore()
	server, srv := fragServer(t, testConfig(), store, lim)
	store.PutFragment(t.Context(), []byte("k"), []byte("v"))
	good := fragClient(t, server).FragmentPeer(server.ID())
	attacker := fragClient(t, server)
	for range lim.peerStreams {
		dialRaw(t, attacker, server.ID(), true)
	}
	r := dialRaw(t, attacker, server.ID(), false)
	r.bw.WriteString(fragPreamble)
	r.bw.Flush()
	r.expectEnd(false)
	if n := srv.peerStreams(attacker.ID()); n != lim.peerStreams {
		t.Errorf("%d attacker streams served, want %d", n, lim.peerStreams)
	}
	if v, err := good.GetFragment(t.Context(), []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("another peer was refused: %q, %v", v, err)
	}
}

func TestFragmentCodec(t *testing.T) {
	reqs := []fragRequest{
		{op: opGet, keys: [][]byte{[]byte("key")}},
		{op: opHas, keys: [][]byte{{0, 1, 2}}},
		{op: opDelete, keys: [][]byte{[]byte("d")}},
		{op: opPut, keys: [][]byte{[]byte("k")}, values: [][]byte{bytes.Repeat([]byte("v"), 10000)}},
		{op: opPut, keys: [][]byte{[]byte("k")}, values: [][]byte{{}}},
		{op: opGetMany, keys: [][]byte{[]byte("a"), []byte("bb"), {}}},
		{op: opHasMany, keys: [][]byte{}},
		{op: opPutMany, keys: [][]byte{[]byte("a"), []byte("b")}, values: [][]byte{[]byte("1"), bytes.Repeat([]byte("2"), 5000)}},
	}
	for _, req := range reqs {
		body := encodeRequest(req).flat()
		got, err := decodeRequest(byte(req.op), body)
		if err != nil {
			t.Errorf("%s: %v", req.op, err)
			continue
		}
		if !equalRequests(got, req) {
			t.Errorf("%s: decoded %+v, want %+v", req.op, got, req)
		}
	}
	reps := []struct {
		op  fragOp
		rep fragReply
	}{
		{opGet, fragReply{value: []byte("value")}},
		{opGet, fragReply{status: stNotFound}},
		{opHas, fragReply{found: true}},
		{opPut, fragReply{status: stNotMember, msg: "not a cluster member"}},
		{opPutMany, fragReply{}},
		{opGetMany, fragReply{items: []fragItem{{value: []byte("x")}, {status: stNotFound}, {status: stStoreError, msg: "disk on fire"}, {status: stSkipped}}}},
		{opHasMany, fragReply{items: []fragItem{{found: true}, {}, {status: stStoreError, msg: "oops"}}}},
	}
	for _, tc := range reps {
		body := encodeReply(tc.op, tc.rep).flat()
		got, err := decodeReply(byte(tc.op)|replyBit, body)
		if err != nil {
			t.Errorf("%s reply: %v", tc.op, err)
			continue
		}
		if !equalReplies(got, tc.rep) {
			t.Errorf("%s reply: decoded %+v, want %+v", tc.op, got, tc.rep)
		}
	}
	if _, err := decodeRequest(byte(opGetMany), binary.AppendUvarint(nil, MaxFragmentBatch+1)); !errors.Is(err, ErrFragmentTooLarge) {
		t.Errorf("oversized batch count: %v", err)
	}
	if _, err := decodeRequest(9, nil); !errors.Is(err, errUnknownOp) {
		t.Errorf("unknown op: %v", err)
	}
	if got := clip("a\nb\x00c\xff "+strings.Repeat("é", 200), 20); got != "a b c? éééééé" {
		t.Errorf("clip = %q", got)
	}
	if got := sanitize("one\ntwo\r\n\tthree\x1b[31m"); got != "one two three [31m" {
		t.Errorf("sanitize = %q", got)
	}
	parts := splitBatch([]int{0, 1, 2, 3, 4}, func(i int) int { return []int{10 << 20, 6 << 20, 1, 10 << 20, 1}[i] })
	if fmt.Sprint(parts) != "[[0 1] [2 3 4]]" {
		t.Errorf("splitBatch = %v", parts)
	}
}

func equalRequests(a, b fragRequest) bool {
	if a.op != b.op || len(a.keys) != len(b.keys) || len(a.values) != len(b.values) {
		return false
	}
	for i := range a.keys {
		if !bytes.Equal(a.keys[i], b.keys[i]) {
			return false
		}
	}
	for i := range a.values {
		if !bytes.Equal(a.values[i], b.values[i]) {
			return false
		}
	}
	return true
}

func equalReplies(a, b fragReply) bool {
	if a.status != b.status || a.msg != b.msg || !bytes.Equal(a.value, b.value) || a.found != b.found || len(a.items) != len(b.items) {
		return false
	}
	for i, x := range a.items {
		y := b.items[i]
		if x.status != y.status || x.msg != y.msg || !bytes.Equal(x.value, y.value) || x.found != y.found {
			return false
		}
	}
	return true
}

// TestFragmentExtraLatency: the client's streams go through the latency
// shim, and pipelining keeps many requests within a few round trips.
func TestFragmentExtraLatency(t *testing.T) {
	const d = 20 * time.Millisecond
	cfg := testConfig()
	cfg.ExtraLatency = func(peer.ID) time.Duration { return d }
	store := fungi.NewMemStore()
	server, _ := fragServer(t, cfg, store, defaultFragLimits())
	client := newHost(t, cfg)
	if err := client.Connect(t.Context(), server.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	c := client.FragmentPeer(server.ID())
	ctx := t.Context()
	start := time.Now()
	if err := c.PutFragment(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*d {
		t.Errorf("a put took %v, want >= %v (the shim's round trip)", took, 2*d)
	}
	start = time.Now()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if v, err := c.GetFragment(ctx, []byte("k")); err != nil || string(v) != "v" {
				t.Errorf("get = %q, %v", v, err)
			}
		})
	}
	wg.Wait()
	t.Logf("100 concurrent gets with a %v round trip: %v", 2*d, time.Since(start))
}

func TestFragmentHostClose(t *testing.T) {
	warm := newHost(t, testConfig()) // see TestCloseNoLeak
	warm.Close()
	base := stableGoroutines()

	server, _ := fragServer(t, testConfig(), fungi.NewMemStore(), defaultFragLimits())
	client := fragClient(t, server)
	c := client.FragmentPeer(server.ID())
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { c.PutFragment(ctx, fragKey(i), fragValue(i, 1000)) })
	}
	wg.Wait()
	if c.openStreams() == 0 {
		t.Fatal("no stream open")
	}
	if err := client.Close(); err != nil { // waits for the streams' goroutines
		t.Fatal(err)
	}
	if n := c.openStreams(); n != 0 {
		t.Errorf("%d streams open after Close", n)
	}
	if _, err := c.GetFragment(ctx, fragKey(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("get after Close: %v, want ErrClosed", err)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > base+3 {
			return fmt.Errorf("%d goroutines after Close, %d before", n, base)
		}
		return nil
	})
}

// BenchmarkFragmentGet fetches 64 KiB fragments (a 1 MiB block over 16
// shards) from one peer over loopback, from many goroutines at once.
func BenchmarkFragmentGet(b *testing.B) {
	const size, count = 1<<16 + fungi.HeaderSize + fungi.TagSize, 256
	store := fungi.NewMemStore()
	keys := make([][]byte, count)
	for i := range keys {
		keys[i] = fragKey(i)
		store.PutFragment(context.Background(), keys[i], fragValue(i, size))
	}
	cfg := testConfig()
	cfg.ListenAddrs = []string{loopTCP}
	server, _ := fragServer(b, cfg, store, defaultFragLimits())
	c := fragClient(b, server).FragmentPeer(server.ID())
	ctx := context.Background()

	b.Run("single", func(b *testing.B) {
		b.SetBytes(size)
		b.SetParallelism(16)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := keys[next.Add(1)%count]
				if _, err := c.GetFragment(ctx, k); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("batch16", func(b *testing.B) {
		b.SetBytes(16 * size)
		b.SetParallelism(4)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(16)) % (count - 16)
				_, errs := c.GetFragments(ctx, keys[i:i+16])
				for _, err := range errs {
					if err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	})
}
