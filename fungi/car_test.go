package fungi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	mh "github.com/multiformats/go-multihash"
)

// testdata/kubo-export.car is `ipfs dag export` (Kubo 0.43) of a dag-cbor
// root linking a dag-json node, a raw block (twice), a CIDv0 UnixFS tree
// (16 KiB dag-pb leaves), an identity dag-cbor CID and a blake3 dag-cbor
// node; the dag-json node links the raw block and a CIDv1 UnixFS tree
// (8 KiB raw leaves; one file's content is also in the CIDv0 tree).
const kuboExport = "testdata/kubo-export.car"

// readCARFile reads every block of a CAR file.
func readCARFile(t testing.TB, path string) (roots []cid.Cid, order []blocks.Block) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr, err := NewCARReader(f, CAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		blk, err := cr.Next()
		if err == io.EOF {
			return cr.Roots, order
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, blk)
	}
}

// mapGetter serves blocks from a map.
type mapGetter map[cid.Cid]blocks.Block

func (m mapGetter) GetBlock(_ context.Context, c cid.Cid) (blocks.Block, error) {
	if b, ok := m[c]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: not found", c)
}

// batchGetter delivers GetBlocks in random order after random delays, and
// counts what it is asked.
type batchGetter struct {
	mapGetter
	mu      sync.Mutex
	batched int
	single  int
}

func (b *batchGetter) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b.mu.Lock()
	b.single++
	b.mu.Unlock()
	return b.mapGetter.GetBlock(ctx, c)
}

func (b *batchGetter) GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block {
	b.mu.Lock()
	b.batched += len(cs)
	b.mu.Unlock()
	out := make(chan blocks.Block)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			if blk, ok := b.mapGetter[c]; ok {
				select {
				case out <- blk:
				case <-ctx.Done():
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

func TestWriteCARMatchesKubo(t *testing.T) {
	want, err := os.ReadFile(kuboExport)
	if err != nil {
		t.Fatal(err)
	}
	roots, order := readCARFile(t, kuboExport)
	if len(roots) != 1 {
		t.Fatalf("%d roots", len(roots))
	}
	all := mapGetter{}
	identity := 0
	for _, b := range order {
		all[b.Cid()] = b
		if IsIdentity(b.Cid()) {
			identity++
		}
	}
	if identity != 1 {
		t.Fatalf("the vector holds %d identity sections, want 1 (Kubo writes them)", identity)
	}
	for _, tc := range []struct {
		name  string
		bg    BlockGetter
		ahead int
	}{
		{"one at a time", all, 0},
		{"batched", &batchGetter{mapGetter: all}, 0},
		{"batched, ahead 1", &batchGetter{mapGetter: all}, 1},
		{"batched, ahead 3", &batchGetter{mapGetter: all}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			var progress int64
			n, err := WriteCAR(context.Background(), &buf, roots[0], tc.bg, CARWriteOptions{Ahead: tc.ahead,
				Progress: func(n int64) { progress += n }})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("export differs from Kubo's: %d bytes, want %d", buf.Len(), len(want))
			}
			if n != int64(len(want)) || progress != n-int64(len(carV1Header(roots[0]))) {
				t.Fatalf("reported %d bytes (progress %d), wrote %d", n, progress, len(want))
			}
			if bg, ok := tc.bg.(*batchGetter); ok && bg.single > 1 {
				t.Fatalf("%d blocks fetched one at a time (want only the root)", bg.single)
			}
		})
	}
	// a missing block fails the export, after what came before it
	for _, b := range order[1:] {
		if b.Cid().Prefix().Codec != cid.Raw || IsIdentity(b.Cid()) {
			continue
		}
		part := mapGetter{}
		for c, blk := range all {
			part[c] = blk
		}
		delete(part, b.Cid())
		var buf bytes.Buffer
		_, err := WriteCAR(context.Background(), &buf, roots[0], &batchGetter{mapGetter: part}, CARWriteOptions{})
		if err == nil || !strings.Contains(err.Error(), b.Cid().String()) {
			t.Fatalf("export without %s: %v", b.Cid(), err)
		}
		if !bytes.HasPrefix(want, buf.Bytes()) {
			t.Fatal("a failed export wrote something else than the start of the CAR")
		}
		break
	}
}

func TestLinksOrder(t *testing.T) {
	_, order := readCARFile(t, kuboExport)
	root := order[0]
	links, err := Links(root)
	if err != nil {
		t.Fatal(err)
	}
	// {"a": [raw, v0 tree], "b": json, "b3": blake3, "id": identity, "zz": raw}
	// in DAG-CBOR's canonical order (shorter keys first)
	if len(links) != 6 || !links[0].Equals(links[5]) || links[0].Prefix().Codec != cid.Raw ||
		links[1].Version() != 0 || links[2].Prefix().Codec != cid.DagJSON ||
		links[3].Prefix().MhType != mh.BLAKE3 || !IsIdentity(links[4]) {
		t.Fatalf("links %v", links)
	}
	for _, b := range order {
		if b.Cid().Prefix().Codec == cid.Raw {
			if l, err := Links(b); err != nil || l != nil {
				t.Fatalf("raw block: links %v, %v", l, err)
			}
		}
	}
	bad, _ := blocks.NewBlockWithCid([]byte{0xa1}, cidOf(t, []byte{0xa1}, cid.DagCBOR))
	if _, err := Links(bad); err == nil {
		t.Fatal("truncated dag-cbor decoded")
	}
	odd, _ := blocks.NewBlockWithCid([]byte("x"), cidOf(t, []byte("x"), 0x78)) // git-raw
	if _, err := Links(odd); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("git-raw: %v", err)
	}
}

func cidOf(t testing.TB, data []byte, codec uint64) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: codec, MhType: mh.SHA2_256, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckCID(t *testing.T) {
	data := []byte("x")
	for _, tc := range []struct {
		prefix cid.Prefix
		ok     bool
	}{
		{cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}, true},
		{cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_512, MhLength: -1}, true},
		{cid.Prefix{Version: 1, Codec: cid.DagJSON, MhType: mh.BLAKE3, MhLength: -1}, true},
		{cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.IDENTITY, MhLength: -1}, true},
		{cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA1, MhLength: -1}, true}, // Kubo allows it (git)
		{cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.MD5, MhLength: -1}, false},
		{cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.MURMUR3X64_64, MhLength: -1}, false},
		{cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: 16}, false},
		{cid.Prefix{Version: 1, Codec: 0x78, MhType: mh.SHA2_256, MhLength: -1}, false},
	} {
		c, err := tc.prefix.Sum(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckCID(c); (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.prefix, err)
		}
	}
}

// carOf builds a CARv1 from raw sections.
func carOf(roots []cid.Cid, sections ...[]byte) []byte {
	b := carV1Header(roots[0])
	if len(roots) != 1 {
		panic("one root")
	}
	for _, s := range sections {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func section(c cid.Cid, data []byte) []byte { return append(c.Bytes(), data...) }

func readAllCAR(b []byte, o CAROptions) (int, error) {
	cr, err := NewCARReader(bytes.NewReader(b), o)
	if err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		if _, err := cr.Next(); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
}

func TestCARReaderRefuses(t *testing.T) {
	good, err := os.ReadFile(kuboExport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := readAllCAR(good, CAROptions{})
	if err != nil || n < 10 {
		t.Fatalf("%d blocks, %v", n, err)
	}
	a := []byte("block a")
	ca := cidOf(t, a, cid.Raw)
	big := randBytes(9, 3<<20)
	cbig := cidOf(t, big, cid.Raw)
	flipped := bytes.Clone(good)
	at := bytes.Index(flipped, []byte("raw block"))
	if at < 0 {
		t.Fatal("no raw block in the vector")
	}
	flipped[at+2] ^= 1
	for _, tc := range []struct {
		name string
		car  []byte
		o    CAROptions
		want string
	}{
		{"empty", nil, CAROptions{}, "header"},
		{"not a CAR", []byte("hello, this is not a CAR file at all"), CAROptions{}, "header"},
		{"truncated header", good[:20], CAROptions{}, "header"},
		{"truncated block", good[:len(good)-5], CAROptions{}, "truncated"},
		{"truncated section length", append(carOf([]cid.Cid{ca}, section(ca, a)), 0x80), CAROptions{}, ""},
		{"block does not match its CID", flipped, CAROptions{}, "integrity"},
		{"CID of other data", carOf([]cid.Cid{ca}, section(ca, []byte("block b"))), CAROptions{}, "integrity"},
		{"huge header varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, CAROptions{}, "header"},
		{"huge section varint", append(carOf([]cid.Cid{ca}), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), CAROptions{}, "section"},
		{"section over the limit", append(carOf([]cid.Cid{ca}), 0xff, 0xff, 0xff, 0x7f), CAROptions{}, "over the 2 MiB limit"},
		{"zero-length section", append(carOf([]cid.Cid{ca}, section(ca, a)), 0), CAROptions{}, "after block 1"},
		{"block over 2 MiB", carOf([]cid.Cid{cbig}, section(cbig, big)), CAROptions{}, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAllCAR(tc.car, tc.o)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBadCAR) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q", err)
			}
		})
	}
	if _, err := readAllCAR(carOf([]cid.Cid{cbig}, section(cbig, big)), CAROptions{}); !errors.Is(err, ErrBlockTooBig) {
		t.Fatalf("big block: %v is not ErrBlockTooBig", err)
	}
	// a block of 3 MiB passes with the limit raised (--allow-big-block)
	if n, err := readAllCAR(carOf([]cid.Cid{cbig}, section(cbig, big)), CAROptions{MaxBlockSize: MaxBlockSize}); err != nil || n != 1 {
		t.Fatalf("big block with the limit raised: %d, %v", n, err)
	}
	// CARv2 (the CARv1 wrapped, with an index) reads the same blocks
	v2 := filepath.Join(t.TempDir(), "v2.car")
	if err := car.WrapV1File(kuboExport, v2); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(v2)
	cr, err := NewCARReader(struct{ io.Reader }{bytes.NewReader(b2)}, CAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Version != 2 {
		t.Fatalf("version %d", cr.Version)
	}
	if n2, err := readAllCAR(b2, CAROptions{}); err != nil || n2 != n {
		t.Fatalf("CARv2: %d blocks (want %d), %v", n2, n, err)
	}
}

func FuzzReadCAR(f *testing.F) {
	good, err := os.ReadFile(kuboExport)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:2000])
	f.Add(good[:200])
	a := []byte("a")
	ca := cidOf(f, a, cid.Raw)
	f.Add(carOf([]cid.Cid{ca}, section(ca, a)))
	v2 := filepath.Join(f.TempDir(), "v2.car")
	small := filepath.Join(f.TempDir(), "small.car")
	os.WriteFile(small, carOf([]cid.Cid{ca}, section(ca, a)), 0o644)
	if err := car.WrapV1File(small, v2); err == nil {
		b, _ := os.ReadFile(v2)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cr, err := NewCARReader(bytes.NewReader(b), CAROptions{})
		if err != nil {
			if !errors.Is(err, ErrBadCAR) {
				t.Fatalf("error not ErrBadCAR: %v", err)
			}
			return
		}
		for {
			blk, err := cr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrBadCAR) {
					t.Fatalf("error not ErrBadCAR: %v", err)
				}
				return
			}
			sum, err := blk.Cid().Prefix().Sum(blk.RawData())
			if err != nil || !sum.Equals(blk.Cid()) {
				t.Fatalf("block %s returned unverified", blk.Cid())
			}
		}
	})
}
