package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// memSource is a BlockSource over a map.
type memSource struct {
	mu sync.Mutex
	m  map[cid.Cid]blocks.Block
}

func (s *memSource) add(data string) blocks.Block {
	b := blocks.NewBlock([]byte(data))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[cid.Cid]blocks.Block{}
	}
	s.m[b.Cid()] = b
	return b
}

func (s *memSource) GetBlock(_ context.Context, c cid.Cid) (blocks.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[c]; ok {
		return b, nil
	}
	return nil, ipld.ErrNotFound{Cid: c}
}

func (s *memSource) BlockSize(ctx context.Context, c cid.Cid) (int, error) {
	b, err := s.GetBlock(ctx, c)
	if err != nil {
		return 0, err
	}
	return len(b.RawData()), nil
}

func (s *memSource) HasBlock(ctx context.Context, c cid.Cid) (bool, error) {
	_, err := s.GetBlock(ctx, c)
	return err == nil, nil
}

// TestBitswap: a server serves its source to a stranger and a member, the
// metrics tell them apart, an unknown block is not delivered.
func TestBitswap(t *testing.T) {
	server, member, stranger := newHost(t, testConfig()), newHost(t, testConfig()), newHost(t, testConfig())
	server.SetAllowed(func(p peer.ID) bool { return p == member.ID() })
	reg := prometheus.NewRegistry()
	src := &memSource{}
	blk := src.add("a block served over bitswap")
	empty := src.add("")
	if _, err := server.StartBitswap(src, BitswapConfig{Registry: reg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, h := range []*Host{member, stranger} {
		bs, err := h.StartBitswap(&memSource{}, BitswapConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, server.AddrInfo()); err != nil {
			t.Fatal(err)
		}
		got, err := bs.GetBlock(ctx, blk.Cid())
		if err != nil {
			t.Fatal(err)
		}
		if string(got.RawData()) != string(blk.RawData()) {
			t.Fatalf("got %q", got.RawData())
		}
		// the empty block (every empty file's raw leaf) is served too
		got, err = bs.GetBlock(ctx, empty.Cid())
		if err != nil || len(got.RawData()) != 0 {
			t.Fatalf("empty block: %v, %v", got, err)
		}
		// nobody has it: not delivered before the deadline
		short, cancelShort := context.WithTimeout(ctx, time.Second)
		_, err = bs.GetBlock(short, testCID("nobody has this"))
		cancelShort()
		if err == nil {
			t.Fatal("an unknown block was delivered")
		}
	}
	for kind, want := range map[string]float64{"member": 2, "other": 2} {
		eventually(t, 5*time.Second, func() error {
			n := counterValue(t, reg, "fungi_bitswap_blocks_sent_total", kind)
			if n != want {
				return fmt.Errorf("blocks sent to %s: %v, want %v", kind, n, want)
			}
			return nil
		})
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{peer=%q}", name, kind)
	return 0
}

// TestIPFSDHT: three hosts in an IPFS DHT on loopback; one announces a
// key it lists, another finds it through the third (its only bootstrap),
// fetches the block over bitswap from the provider it found, and a
// reprovide announces the listed keys again.
func TestIPFSDHT(t *testing.T) {
	boot, prov, seeker := newHost(t, testConfig()), newHost(t, testConfig()), newHost(t, testConfig())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := boot.JoinIPFS(ctx, IPFSConfig{PrivateAddrs: true}); err != nil {
		t.Fatal(err)
	}
	bootAddr := addrStrings(boot)[0]
	src := &memSource{}
	blk := src.add("announced in the IPFS DHT")
	keys := func(ctx context.Context) (<-chan cid.Cid, error) {
		ch := make(chan cid.Cid, 1)
		ch <- blk.Cid()
		close(ch)
		return ch, nil
	}
	if _, err := prov.StartBitswap(src, BitswapConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := prov.JoinIPFS(ctx, IPFSConfig{Bootstrap: []string{bootAddr}, PrivateAddrs: true, Keys: keys, ReprovideInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := prov.JoinIPFS(ctx, IPFSConfig{}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second JoinIPFS: %v", err)
	}
	bs, err := seeker.StartBitswap(&memSource{}, BitswapConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := seeker.JoinIPFS(ctx, IPFSConfig{Bootstrap: []string{bootAddr}, PrivateAddrs: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if n := prov.IPFS().RoutingTable; n == 0 {
			return errors.New("provider's IPFS routing table is empty")
		}
		return nil
	})
	if err := prov.IPFSProvide(ctx, blk.Cid()); err != nil {
		t.Fatal(err)
	}
	var found []peer.AddrInfo
	eventually(t, 30*time.Second, func() error {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		defer fcancel()
		found = nil
		for ai := range seeker.IPFSRouting().FindProvidersAsync(fctx, blk.Cid(), 5) {
			found = append(found, ai)
		}
		if !slices.ContainsFunc(found, func(ai peer.AddrInfo) bool { return ai.ID == prov.ID() }) {
			return fmt.Errorf("providers found: %v", found)
		}
		return nil
	})
	// the seeker was never told the provider's address: the DHT did
	got, err := bs.GetBlock(ctx, blk.Cid())
	if err != nil {
		t.Fatal(err)
	}
	if string(got.RawData()) != string(blk.RawData()) {
		t.Fatalf("got %q", got.RawData())
	}
	if err := prov.IPFSReprovide(ctx); err != nil {
		t.Fatal(err)
	}
	if st := prov.IPFS(); st.Reprovides == 0 || st.LastReprovideKeys != 1 {
		t.Fatalf("after a reprovide: %+v", st)
	}
	// a host outside the IPFS DHT says so
	other := newHost(t, testConfig())
	if err := other.IPFSProvide(ctx, blk.Cid()); !errors.Is(err, ErrNoIPFS) {
		t.Fatalf("IPFSProvide outside the DHT: %v", err)
	}
	if other.InIPFS() || other.IPFS().Joined {
		t.Fatal("a host that did not join reports the IPFS DHT")
	}
}

func TestIPFSBootstrapConfig(t *testing.T) {
	h := newHost(t, testConfig())
	for _, bad := range []string{"/ip4/1.2.3.4/tcp/4001", "nonsense", "/dnsaddr/bootstrap.libp2p.io"} {
		err := h.JoinIPFS(t.Context(), IPFSConfig{Bootstrap: []string{bad}})
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), bad) {
			t.Errorf("bootstrap %q: %v; want one line naming it", bad, err)
		}
	}
}
