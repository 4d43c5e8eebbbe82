package fungi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

var testSecret = bytes.Repeat([]byte{0x42}, 32)

// pool returns a placement over n in-memory stores.
func pool(n int) (Spread, []*MemStore) {
	var sp Spread
	var stores []*MemStore
	for i := 0; i < n; i++ {
		s := NewMemStore()
		stores = append(stores, s)
		sp.Pool = append(sp.Pool, Target{ID: fmt.Sprintf("node%d", i), Store: s})
	}
	return sp, stores
}

// addBytes imports data as a file with the default profile and returns the
// manifest.
func addBytes(t testing.TB, data []byte, c Coding, place Placement) *Manifest {
	t.Helper()
	codec, err := NewCodec(testSecret, c)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(context.Background(), codec, c, place, 0)
	nd, err := ImportFile(context.Background(), bytes.NewReader(data), DefaultProfile, w)
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish(nd.Cid())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readAll(t testing.TB, m *Manifest, place Placement) ([]byte, error) {
	t.Helper()
	codec, _ := NewCodec(testSecret, m.Coding)
	r := NewReader(codec, m.Coding, place, 0)
	dag := r.DAG(m)
	nd, err := dag.Get(context.Background(), m.Root)
	if err != nil {
		return nil, err
	}
	rd, err := uio.NewDagReader(context.Background(), nd, dag)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(rd)
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Sizes at and around block boundaries round-trip exactly, on one node and
// spread over a pool.
func TestObjectRoundTrip(t *testing.T) {
	const mib = 1 << 20
	sizes := []int{0, 1, 4095, mib - 1, mib, mib + 1, 3*mib + 7}
	if !testing.Short() {
		sizes = append(sizes, 24*mib+3)
	}
	for _, n := range sizes {
		for _, nodes := range []int{1, 5, 20} {
			t.Run(fmt.Sprintf("%dB/%dnodes", n, nodes), func(t *testing.T) {
				place, _ := pool(nodes)
				data := randBytes(uint64(n), n)
				m := addBytes(t, data, DefaultCoding(), place)
				got, err := readAll(t, m, place)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read back %d bytes, %v", len(got), err)
				}
			})
		}
	}
}

// Up to N-K lost or corrupted fragments per block, in random patterns, never
// change the bytes read; one more makes the read fail with a clear error.
func TestLossAndCorruption(t *testing.T) {
	for _, cs := range []string{"4/2", "10/4", "16/4", "16/4:sys", "32/8"} {
		t.Run(cs, func(t *testing.T) {
			c, err := ParseCoding(cs)
			if err != nil {
				t.Fatal(err)
			}
			store := NewMemStore()
			place := Spread{Pool: []Target{{ID: "one", Store: store}}}
			data := randBytes(7, 3<<20+12345)
			m := addBytes(t, data, c, place)
			leaves := leafCIDs(t, m)
			rng := rand.New(rand.NewPCG(uint64(c.K), uint64(c.N)))
			for round := 0; round < 5; round++ {
				damaged := NewMemStore()
				for _, leaf := range leaves {
					for i := 0; i < c.N; i++ {
						k := FragmentKey(leaf, c, i)
						v, _ := store.GetFragment(context.Background(), k)
						damaged.PutFragment(context.Background(), k, v)
					}
					for _, i := range rng.Perm(c.N)[:c.N-c.K] {
						k := FragmentKey(leaf, c, i)
						switch rng.IntN(4) {
						case 0:
							damaged.DeleteFragment(context.Background(), k)
						case 1:
							damaged.Mutate(k, func(b []byte) []byte { b[rng.IntN(len(b))] ^= 1 << rng.IntN(8); return b })
						case 2:
							damaged.Mutate(k, func(b []byte) []byte { return b[:rng.IntN(len(b))] })
						case 3: // a valid fragment of another index
							other, _ := store.GetFragment(context.Background(), FragmentKey(leaf, c, (i+1)%c.N))
							damaged.Mutate(k, func([]byte) []byte { return other })
						}
					}
				}
				got, err := readAll(t, m, Spread{Pool: []Target{{ID: "one", Store: damaged}}})
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("round %d: %d bytes, %v", round, len(got), err)
				}
			}
			// one fragment too many gone from block 1
			for i := 0; i <= c.N-c.K; i++ {
				store.DeleteFragment(context.Background(), FragmentKey(leaves[1], c, i))
			}
			_, err = readAll(t, m, place)
			var ue *UnavailableError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("read with too few fragments: %v", err)
			}
			want := fmt.Sprintf("content unavailable: %d of %d required fragments reachable for block 1 of %s", c.K-1, c.K, m.Root)
			if msg := err.Error(); len(msg) < len(want) || msg[:len(want)] != want {
				t.Fatalf("error %q, want it to start with %q", msg, want)
			}
		})
	}
}

func leafCIDs(t testing.TB, m *Manifest) []cid.Cid {
	t.Helper()
	if len(m.Nodes) == 0 {
		return []cid.Cid{m.Root}
	}
	nd, err := decodeNode(m.Nodes[m.Root])
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for _, l := range nd.Links() {
		out = append(out, l.Cid)
	}
	return out
}

// slowStore answers after a delay (a far or overloaded holder).
type slowStore struct {
	FragmentStore
	delay time.Duration
}

func (s slowStore) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.FragmentStore.GetFragment(ctx, key)
}

// countingStore counts the fragments asked of it.
type countingStore struct {
	FragmentStore
	n *int64
}

func (s countingStore) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	*s.n++
	return s.FragmentStore.GetFragment(ctx, key)
}

// A holder that stalls does not stall reads: hedged requests go around it.
func TestHedgingAroundSlowHolder(t *testing.T) {
	place, _ := pool(20)
	data := randBytes(9, 2<<20)
	m := addBytes(t, data, DefaultCoding(), place)
	slow := Spread{Pool: append([]Target(nil), place.Pool...)}
	for i := 0; i < 3; i++ {
		slow.Pool[i].Store = slowStore{slow.Pool[i].Store, 10 * time.Second}
	}
	start := time.Now()
	got, err := readAll(t, m, slow)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("read waited for the stalled holders (%v)", el)
	}
}

// With latency estimates, a read asks the K nearest holders only.
func TestReadsNearestHolders(t *testing.T) {
	place, _ := pool(20)
	data := randBytes(11, 1<<20)
	m := addBytes(t, data, DefaultCoding(), place)
	counts := make([]int64, 20)
	counted := Spread{Pool: append([]Target(nil), place.Pool...)}
	for i := range counted.Pool {
		counted.Pool[i].Store = countingStore{counted.Pool[i].Store, &counts[i]}
	}
	codec, _ := NewCodec(testSecret, m.Coding)
	r := NewReader(codec, m.Coding, counted, 0)
	r.HedgeAfter = time.Hour
	for i, tg := range counted.Pool {
		if i < 4 {
			r.Latency().Set(tg.ID, 100*time.Millisecond) // far
		} else {
			r.Latency().Set(tg.ID, time.Millisecond)
		}
	}
	if _, err := r.Block(context.Background(), m.Root); err != nil {
		t.Fatal(err)
	}
	for i, n := range counts {
		if i < 4 && n != 0 {
			t.Fatalf("far holder %d was asked", i)
		}
		if i >= 4 && n != 1 {
			t.Fatalf("near holder %d asked %d times", i, n)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "b", "f"), randBytes(1, 3<<20), 0o644)
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	os.Symlink("a/b/f", filepath.Join(dir, "link"))
	place, _ := pool(3)
	codec, _ := NewCodec(testSecret, DefaultCoding())
	w := NewWriter(context.Background(), codec, DefaultCoding(), place, 0)
	root, err := ImportPath(context.Background(), dir, DefaultProfile, w, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Finish(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	again, _ := back.MarshalBinary()
	if !bytes.Equal(b, again) || back.Root != m.Root || len(back.Nodes) != len(m.Nodes) || back.Size != m.Size {
		t.Fatal("manifest changed in a round trip")
	}
	// every bit flip is caught
	for i := 0; i < len(b); i += 7 {
		bad := bytes.Clone(b)
		bad[i] ^= 0x10
		var x Manifest
		if x.UnmarshalBinary(bad) == nil {
			if x2, _ := x.MarshalBinary(); bytes.Equal(x2, b) {
				t.Fatalf("flip at %d decoded to the same manifest", i)
			}
		}
	}
}

// Per-block metadata stays small: tens of bytes per 1 MiB block.
func TestManifestIsCompact(t *testing.T) {
	place, _ := pool(1)
	m := addBytes(t, randBytes(3, 64<<20), DefaultCoding(), place)
	b, _ := m.MarshalBinary()
	per := float64(len(b)) / float64(m.Leaves)
	t.Logf("manifest %d bytes for %d blocks: %.1f bytes per block", len(b), m.Leaves, per)
	if per > 64 {
		t.Fatalf("%.1f bytes per block", per)
	}
}

func FuzzManifest(f *testing.F) {
	place, _ := pool(1)
	m := addBytes(f, randBytes(5, 2<<20+5), DefaultCoding(), place)
	b, _ := m.MarshalBinary()
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte(manifestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		var m2 Manifest
		if err := m2.UnmarshalBinary(again); err != nil || m2.Root != m.Root || len(m2.Nodes) != len(m.Nodes) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestSpreadPlacement(t *testing.T) {
	c := DefaultCoding()
	for _, tc := range []struct{ nodes, tolerance int }{{1, 0}, {2, 0}, {5, 1}, {10, 2}, {20, 4}, {30, 4}} {
		place, _ := pool(tc.nodes)
		if got := place.Tolerance(c); got != tc.tolerance {
			t.Errorf("%d nodes: tolerance %d, want %d", tc.nodes, got, tc.tolerance)
		}
		ts, _ := place.Place(cid.NewCidV1(cid.Raw, mustHash(t, "x")), c.N)
		per := map[string]int{}
		for _, tg := range ts {
			per[tg.ID]++
		}
		for id, n := range per {
			if n > (c.N+tc.nodes-1)/tc.nodes {
				t.Errorf("%d nodes: %s holds %d fragments", tc.nodes, id, n)
			}
		}
	}
	// failure domains are filled before any gets a second fragment
	var sp Spread
	for i := 0; i < 8; i++ {
		sp.Pool = append(sp.Pool, Target{ID: fmt.Sprint("n", i), Domain: fmt.Sprint("region", i%4), Store: NewMemStore()})
	}
	ts, _ := sp.Place(cid.NewCidV1(cid.Raw, mustHash(t, "y")), 4)
	seen := map[string]bool{}
	for _, tg := range ts {
		if seen[tg.Domain] {
			t.Fatalf("domain %s got two of the first four fragments", tg.Domain)
		}
		seen[tg.Domain] = true
	}
}

func mustHash(t testing.TB, s string) mh.Multihash {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
