package fungi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// importBlocks runs a DAG import of blocks with roots over place; held
// blocks are already stored.
func importBlocks(t testing.TB, roots []cid.Cid, bs []blocks.Block, place Placement, held ...cid.Cid) ([]*Manifest, *DAGImport, error) {
	t.Helper()
	codec, err := NewCodec(testSecret, DefaultCoding())
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(context.Background(), codec, DefaultCoding(), place, 0)
	t.Cleanup(w.Close)
	d := NewDAGImport(w, func(c cid.Cid) bool { return containsCID(held, c) })
	d.AddRoots(roots)
	for _, b := range bs {
		if err := d.Add(context.Background(), b); err != nil {
			return nil, d, err
		}
	}
	if err := d.Finish(); err != nil {
		return nil, d, err
	}
	if d.Count != uint64(len(bs)) {
		t.Fatalf("counted %d blocks of %d", d.Count, len(bs))
	}
	ms, err := d.Manifests()
	return ms, d, err
}

// manifestGetter serves a manifest's blocks: inline ones from it, dispersed
// ones through a Reader.
type manifestGetter struct {
	m *Manifest
	r *Reader
}

func (g manifestGetter) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if b, ok := g.m.Nodes[c]; ok {
		return b, nil
	}
	data, err := g.r.Block(ctx, c)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

func TestDAGImportRoundTrip(t *testing.T) {
	want, _ := os.ReadFile(kuboExport)
	roots, bs := readCARFile(t, kuboExport)
	place, _ := pool(5)
	// every block twice: repeats are counted, stored once
	ms, _, err := importBlocks(t, roots, append(bs, bs...), place)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !ms[0].SelfContained() {
		t.Fatalf("%d manifests, missing %v", len(ms), ms[0].Missing)
	}
	m := ms[0]
	if !m.Imported || m.Root != roots[0] || int(m.Leaves) != len(m.Dispersed) || m.Stored == 0 {
		t.Fatalf("manifest %+v", m)
	}
	// each stored block is inline or dispersed by the policy; identity
	// CIDs are neither
	disp := map[cid.Cid]BlockRef{}
	for _, d := range m.Dispersed {
		disp[d.CID] = d
	}
	var size uint64
	for _, b := range bs {
		c := b.Cid()
		_, in := m.Nodes[c]
		d, out := disp[c]
		links, _ := Links(b)
		switch {
		case IsIdentity(c):
			if in || out {
				t.Fatalf("identity %s stored", c)
			}
			continue
		case in == out:
			t.Fatalf("%s inline %v, dispersed %v", c, in, out)
		case in != inlined(len(b.RawData()), len(links) > 0):
			t.Fatalf("%s (%d bytes, %d links) inline %v", c, len(b.RawData()), len(links), in)
		case out && int(d.Size) != len(b.RawData()):
			t.Fatalf("%s size %d", c, d.Size)
		}
		size += uint64(len(b.RawData()))
	}
	if m.Size != size || len(m.Dispersed) == 0 || len(m.Nodes) == 0 {
		t.Fatalf("size %d (want %d), %d dispersed, %d inline", m.Size, size, len(m.Dispersed), len(m.Nodes))
	}
	// a deterministic round trip; every bit flip caught
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	again, _ := back.MarshalBinary()
	if !bytes.Equal(b, again) || !back.Imported || len(back.Dispersed) != len(m.Dispersed) {
		t.Fatal("manifest changed in a round trip")
	}
	for i := 0; i < len(b); i += 5 {
		bad := bytes.Clone(b)
		bad[i] ^= 0x04
		var x Manifest
		if x.UnmarshalBinary(bad) == nil {
			if x2, _ := x.MarshalBinary(); bytes.Equal(x2, b) {
				t.Fatalf("flip at %d decoded to the same manifest", i)
			}
		}
	}
	leaves, _ := back.LeafCIDs()
	sizes, _ := back.LeafSizes()
	if len(leaves) != len(m.Dispersed) || len(sizes) != len(leaves) {
		t.Fatalf("%d leaves, %d sizes", len(leaves), len(sizes))
	}
	for _, l := range leaves {
		if sizes[l] != int64(disp[l].Size) {
			t.Fatalf("%s: size %d", l, sizes[l])
		}
	}
	// exported from what was stored, it is Kubo's CAR again
	codec, _ := NewCodec(testSecret, back.Coding)
	r := NewReader(codec, back.Coding, place, 0)
	var out bytes.Buffer
	if _, err := WriteCAR(context.Background(), &out, back.Root, manifestGetter{&back, r}, CARWriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("export of the import differs from Kubo's CAR")
	}
}

func TestDAGImportPartial(t *testing.T) {
	roots, bs := readCARFile(t, kuboExport)
	place, _ := pool(5)
	// leave out the CIDv0 tree's root (and so everything under it is
	// reached by no root) and add a block no one links to
	l, _ := Links(bs[0])
	v0 := l[1]
	var part []blocks.Block
	for _, b := range bs {
		if b.Cid() != v0 {
			part = append(part, b)
		}
	}
	ld := bytes.Repeat([]byte("loose "), 200)
	extra, _ := blocks.NewBlockWithCid(ld, cidOf(t, ld, cid.Raw))
	part = append(part, extra)
	ms, _, err := importBlocks(t, roots, part, place)
	if err != nil {
		t.Fatal(err)
	}
	// the root's DAG misses the v0 tree; the v0 tree's children and the
	// loose block are each reached from no other new block
	if len(ms) < 3 || len(ms[0].Missing) != 1 || ms[0].Missing[0] != v0 || ms[0].Root != roots[0] {
		t.Fatalf("%d manifests: %+v", len(ms), ms[0])
	}
	roots2 := map[cid.Cid]*Manifest{}
	for _, m := range ms {
		if roots2[m.Root] != nil || !m.Holds(m.Root) {
			t.Fatalf("manifest %s twice or without its root", m.Root)
		}
		roots2[m.Root] = m
		for c := range m.Nodes {
			if c != m.Root && roots2[c] != nil {
				t.Fatalf("%s in two manifests", c)
			}
		}
	}
	if roots2[extra.Cid()] == nil || roots2[extra.Cid()].Size != uint64(len(ld)) {
		t.Fatal("the loose block is not a manifest of its own")
	}
	// every stored block is in exactly one manifest; the partial DAG's
	// link is not mistaken for a stored leaf
	for _, b := range part {
		n := 0
		for _, m := range ms {
			if m.Holds(b.Cid()) {
				n++
			}
		}
		if n != 1 && !IsIdentity(b.Cid()) {
			t.Fatalf("%s in %d manifests", b.Cid(), n)
		}
	}
	if leaves, _ := ms[0].LeafCIDs(); containsCID(leaves, v0) {
		t.Fatal("a missing block listed as a leaf")
	}
	b, _ := ms[0].MarshalBinary()
	var back Manifest
	if err := back.UnmarshalBinary(b); err != nil || len(back.Missing) != 1 || back.SelfContained() {
		t.Fatalf("missing lost in a round trip: %v", err)
	}

	// blocks already held are neither stored nor listed again: the same
	// import over what it stored makes no manifest at all
	var held []cid.Cid
	for _, m := range ms {
		for c := range m.Nodes {
			held = append(held, c)
		}
		for _, d := range m.Dispersed {
			held = append(held, d.CID)
		}
	}
	place2, stores2 := pool(5)
	again, _, err := importBlocks(t, roots, part, place2, held...)
	if err != nil || len(again) != 0 {
		t.Fatalf("import of held blocks: %d manifests, %v", len(again), err)
	}
	for _, s := range stores2 {
		if s.Len() != 0 {
			t.Fatal("held blocks stored again")
		}
	}
	// ... and the full CAR over it makes only the v0 tree's root manifest
	_, full := readCARFile(t, kuboExport)
	again, _, err = importBlocks(t, roots, full, place2, held...)
	if err != nil || len(again) != 1 || again[0].Root != v0 || len(again[0].Nodes)+len(again[0].Dispersed) != 1 {
		t.Fatalf("import over held blocks: %d manifests, %v", len(again), err)
	}

	// a root that is in no CAR of the import fails it
	if _, _, err := importBlocks(t, []cid.Cid{v0}, part, place); !errors.Is(err, ErrRootNotInCAR) {
		t.Fatalf("root not in the CAR: %v", err)
	}
	// so does a block of a codec we cannot read
	odd, _ := blocks.NewBlockWithCid([]byte("x"), cidOf(t, []byte("x"), 0x78))
	if _, _, err := importBlocks(t, roots, append(bs, odd), place); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("git-raw block: %v", err)
	}
}

func containsCID(cs []cid.Cid, c cid.Cid) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func TestLeafSizesUnixFS(t *testing.T) {
	place, _ := pool(1)
	for _, n := range []int{0, 100, 1 << 20, 3<<20 + 5} {
		m := addBytes(t, randBytes(uint64(n), n), DefaultCoding(), place)
		leaves, err := m.LeafCIDs()
		if err != nil {
			t.Fatal(err)
		}
		sizes, err := m.LeafSizes()
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		distinct := map[cid.Cid]bool{}
		for _, l := range leaves {
			distinct[l] = true
		}
		for _, s := range sizes {
			sum += s
		}
		// small leaves are inline: no size listed, their bytes in Nodes
		all, err := m.AllLeaves()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range all {
			if l.Inline {
				sum += int64(len(m.Nodes[l.CID].RawData()))
			}
		}
		if len(sizes) != len(distinct) || (len(distinct) == len(leaves) && sum != int64(n)) {
			t.Fatalf("%d bytes: %d sizes for %d leaves, sum %d", n, len(sizes), len(distinct), sum)
		}
	}
}

// The metadata an imported DAG costs per block, beside what an add of the
// same file costs: a dispersed block is listed with its size (~40 bytes
// for a CIDv1 sha2-256), on top of the link its parent holds; an inline
// one costs its CID and bytes.
func TestImportedManifestCost(t *testing.T) {
	place, _ := pool(1)
	data := randBytes(11, 64<<20)
	added := addBytes(t, data, DefaultCoding(), place)
	// the same file's blocks, as a CAR would bring them
	dag := NewMemDAG(false)
	nd, err := ImportFile(context.Background(), bytes.NewReader(data), DefaultProfile, dag)
	if err != nil {
		t.Fatal(err)
	}
	var bs []blocks.Block
	for _, n := range dag.nodes {
		bs = append(bs, n)
	}
	ms, _, err := importBlocks(t, []cid.Cid{nd.Cid()}, bs, place)
	if err != nil || len(ms) != 1 {
		t.Fatalf("%d manifests, %v", len(ms), err)
	}
	v1, _ := added.MarshalBinary()
	v2, _ := ms[0].MarshalBinary()
	perV1 := float64(len(v1)) / float64(added.Leaves)
	perV2 := float64(len(v2)) / float64(len(ms[0].Dispersed))
	t.Logf("%d leaves of 1 MiB: added %d bytes (%.1f per block), imported %d bytes (%.1f per block, %.1f for the list)",
		len(ms[0].Dispersed), len(v1), perV1, len(v2), perV2, perV2-perV1)
	if perV2-perV1 > 44 {
		t.Fatalf("the list of dispersed blocks costs %.1f bytes per block", perV2-perV1)
	}
	// small blocks inline: a dag-cbor node linking 100 raw blocks of 100
	// bytes, against the same with the blocks left out (a partial DAG)
	var small []blocks.Block
	var links []byte
	for i := range 100 {
		d := randBytes(uint64(100+i), 100)
		b, _ := blocks.NewBlockWithCid(d, cidOf(t, d, cid.Raw))
		small = append(small, b)
		links = append(links, 0xd8, 0x2a, 0x58, 37, 0)
		links = append(links, b.Cid().Bytes()...)
	}
	root := append([]byte{0x98, 100}, links...) // a DAG-CBOR list of 100 links
	rb, _ := blocks.NewBlockWithCid(root, cidOf(t, root, cid.DagCBOR))
	full, _, err := importBlocks(t, []cid.Cid{rb.Cid()}, append([]blocks.Block{rb}, small...), place)
	if err != nil {
		t.Fatal(err)
	}
	part, _, err := importBlocks(t, []cid.Cid{rb.Cid()}, []blocks.Block{rb}, place)
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := full[0].MarshalBinary()
	pb, _ := part[0].MarshalBinary()
	missing := 0 // the partial one lists them as missing: CID and its length
	for _, b := range small {
		missing += len(b.Cid().Bytes()) + 1
	}
	per := float64(len(fb)-(len(pb)-missing)) / 100
	t.Logf("inline: %d bytes for 100 blocks of 100 bytes (%.1f per block); missing: %.1f per block", len(fb), per, float64(missing)/100)
	if len(full[0].Nodes) != 101 || per > 100+40 {
		t.Fatalf("%d inline blocks, %.1f bytes each", len(full[0].Nodes), per)
	}
}
