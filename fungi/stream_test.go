package fungi

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
)

// pooledStore hands out each fragment in a buffer of FragmentBuffer that
// becomes the reader's, as the libp2p exchange's client does.
type pooledStore struct{ FragmentStore }

func (s pooledStore) GetFragmentPooled(ctx context.Context, key []byte) ([]byte, func(), error) {
	v, err := s.FragmentStore.GetFragment(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	b := FragmentBuffer(len(v))
	copy(b, v)
	return b, func() { ReleaseFragment(b) }, nil
}

func streamAll(t testing.TB, r *Reader, m *Manifest, off, n int64) ([]byte, error) {
	t.Helper()
	dag := r.DAG(m)
	nd, err := dag.Get(context.Background(), m.Root)
	if err != nil {
		return nil, err
	}
	fs, err := NewFileStream(context.Background(), dag, nd)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = fs.WriteRange(context.Background(), &out, off, n)
	return out.Bytes(), err
}

// Many objects read at once, whole and by ranges, through pooled fragment
// and block buffers: every byte is the object's own. A buffer given back
// while still in use, or handed out twice, would put another block's
// bytes in a read.
func TestStreamBuffersNeverMix(t *testing.T) {
	c, _ := ParseCoding("16/4")
	sp, stores := pool(20)
	var pooled Spread
	for i, s := range stores {
		pooled.Pool = append(pooled.Pool, Target{ID: sp.Pool[i].ID, Store: pooledStore{s}})
	}
	type object struct {
		data []byte
		m    *Manifest
	}
	var objs []object
	for k, size := range []int{0, 1, 4095, 65536, 1<<20 - 1, 1 << 20, 1<<20 + 1, 3<<20 + 7, 3<<20 + 7, 3<<20 + 7} {
		data := randBytes(uint64(100+k), size)
		objs = append(objs, object{data, addBytes(t, data, c, sp)})
	}
	codec, _ := NewCodec(testSecret, c)
	r := NewReader(codec, c, pooled, 0)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for round := range 6 {
				for _, k := range rng.Perm(len(objs)) {
					o := objs[k]
					off, n := int64(0), int64(-1)
					if round%2 == 1 && len(o.data) > 0 {
						off = rng.Int64N(int64(len(o.data)))
						n = rng.Int64N(int64(len(o.data)) - off + 1)
					}
					got, err := streamAll(t, r, o.m, off, n)
					if n < 0 {
						n = int64(len(o.data)) - off
					}
					if err != nil || !bytes.Equal(got, o.data[off:off+n]) {
						t.Errorf("object %d [%d, +%d): %d bytes, equal %v, %v", k, off, n, len(got), bytes.Equal(got, o.data[off:off+n]), err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// Fragments are decoded before their tags are checked; a damaged one
// still fails the block, and is then found by its tag, reported and
// replaced: the read gives the right bytes and names the bad fragment.
func TestOptimisticDecodeFindsBadFragments(t *testing.T) {
	c, _ := ParseCoding("16/4")
	sp, stores := pool(20)
	data := randBytes(5, 3<<20+4099) // a last leaf too big to be inline
	m := addBytes(t, data, c, sp)
	leaves := leafCIDs(t, m)
	// the first fragment of every leaf has a flipped bit in its shard (its
	// header still parses: only its tag tells)
	for _, leaf := range leaves {
		for i := range c.N {
			stores[i].Mutate(FragmentKey(leaf, c, 0), func(b []byte) []byte {
				b[HeaderSize+3] ^= 0x10
				return b
			})
		}
	}
	codec, _ := NewCodec(testSecret, c)
	var pooled Spread
	for i, s := range stores {
		pooled.Pool = append(pooled.Pool, Target{ID: sp.Pool[i].ID, Store: pooledStore{s}})
	}
	for _, place := range []Spread{sp, pooled} {
		r := NewReader(codec, c, place, 0)
		var mu sync.Mutex
		bad := map[string]bool{}
		r.OnBadFragment = func(target string, block cid.Cid, index int, err error) {
			mu.Lock()
			bad[fmt.Sprintf("%s/%d", block, index)] = true
			mu.Unlock()
		}
		got, err := streamAll(t, r, m, 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read with a bad fragment per block: %d bytes, %v", len(got), err)
		}
		for _, leaf := range leaves {
			if !bad[fmt.Sprintf("%s/0", leaf)] {
				t.Errorf("fragment 0 of %s was damaged and not reported (reported: %v)", leaf, bad)
			}
		}
	}
}
