package node

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/store/zdb"
)

// Where keeping a small leaf in the replicated metadata beats coding it
// (issue 15). A coded leaf costs its N fragments (header, shard, tag),
// each a record in a holder's ZDB (measured here from a real ZDB's data
// files and heap); an inline one costs the bytes it adds to the
// manifest, on every member, in memory, in the raft log and in the
// snapshots (consensus.TestManifestStorageCost measures those: 1 byte of
// memory, 1.03 in the log, 1.00 in each of two snapshots per byte). The
// table in docs/architecture.md ("Small objects") is this test's log:
// `go test -run TestSmallObjectCost -v ./node/`.
func TestSmallObjectCost(t *testing.T) {
	coding := fungi.DefaultCoding()
	codec, err := fungi.NewCodec(bytes.Repeat([]byte{7}, 32), coding)
	if err != nil {
		t.Fatal(err)
	}
	recDisk, recHeap := zdbRecordCost(t)
	t.Logf("ZDB record: %.1f bytes of data file beyond the value, ~%.0f bytes of index memory per key", recDisk, recHeap)

	const (
		logPerByte  = 1.03 // consensus.TestManifestStorageCost
		snapPerByte = 1.00
		snapshots   = 2
	)
	members := []int{3, 5, 20}
	var head strings.Builder
	fmt.Fprintf(&head, "| leaf bytes | coded: disk (%d fragments + records), x size | coded: index RAM | inline: manifest bytes (RAM per member) |", coding.N)
	for _, m := range members {
		fmt.Fprintf(&head, " inline, %d members: RAM / disk |", m)
	}
	t.Log(head.String())
	for _, s := range []int{0, 1, 100, 512, 1024, fungi.InlineLeafMax - 1, fungi.InlineLeafMax, fungi.InlineLeafMax + 1, 2048, 4096} {
		data := randBytes(uint64(s)+1, s)
		frags := codedBytes(t, codec, data)
		coded := float64(frags) + float64(coding.N)*recDisk
		codedRAM := float64(coding.N) * recHeap
		inl := inlineManifestBytes(t, codec, coding, data)
		// on disk, per member: the raft log (until compacted) and two
		// snapshots
		disk := float64(inl) * (logPerByte + snapshots*snapPerByte)
		var row strings.Builder
		fmt.Fprintf(&row, "| %d | %.0f (%s) | %.0f | %d |", s, coded, ratio(coded, s), codedRAM, inl)
		for _, m := range members {
			fmt.Fprintf(&row, " %d / %.0f |", m*inl, float64(m)*disk)
		}
		t.Log(row.String())
	}

	// the rule: a 1 KiB object is inline, and one just past the
	// threshold costs at most 3x its size in fragments and records
	if fungi.InlineLeafMax < 1024 {
		t.Fatalf("InlineLeafMax %d: a 1 KiB object would need fragment round trips", fungi.InlineLeafMax)
	}
	for s := fungi.InlineLeafMax + 1; s <= 4*fungi.InlineLeafMax; s += 61 {
		coded := float64(codedBytes(t, codec, randBytes(uint64(s), s))) + float64(coding.N)*recDisk
		if coded > 3*float64(s) {
			t.Fatalf("a coded leaf of %d bytes costs %.0f bytes (%s): past InlineLeafMax %d, overhead must stay within 3x", s, coded, ratio(coded, s), fungi.InlineLeafMax)
		}
	}
}

func ratio(cost float64, size int) string {
	if size == 0 {
		return "∞"
	}
	return fmt.Sprintf("%.2fx", cost/float64(size))
}

// codedBytes is the bytes of the fragments of a leaf holding data.
func codedBytes(t testing.TB, codec *fungi.Codec, data []byte) int {
	t.Helper()
	enc, err := codec.Encode(rawCID(t, data), data)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Release()
	n := 0
	for _, f := range enc.Fragments {
		n += len(f)
	}
	return n
}

// inlineManifestBytes is what keeping data inline adds to the manifest
// of the object it is the only block of.
func inlineManifestBytes(t testing.TB, codec *fungi.Codec, coding fungi.Coding, data []byte) int {
	t.Helper()
	size := func(inlineMax int) int {
		place := fungi.Spread{Pool: []fungi.Target{{ID: "local", Store: fungi.NewMemStore()}}}
		w := fungi.NewWriter(context.Background(), codec, coding, place, 1)
		w.InlineMax = inlineMax
		nd, err := fungi.ImportFile(context.Background(), bytes.NewReader(data), fungi.DefaultProfile, w)
		if err != nil {
			t.Fatal(err)
		}
		m, err := w.Finish(nd.Cid())
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	return size(len(data)) - size(-1)
}

// zdbRecordCost writes fragment-sized records under fragment keys to a
// real ZDB and measures the data files' growth beyond the values and the
// heap its index takes per key.
func zdbRecordCost(t testing.TB) (disk, heap float64) {
	t.Helper()
	dir := t.TempDir()
	cfg := zdb.DefaultConfig()
	cfg.DataDir, cfg.IndexDir = filepath.Join(dir, "data"), filepath.Join(dir, "index")
	db, err := zdb.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ns, err := db.CreateNamespace("fragments")
	if err != nil {
		t.Fatal(err)
	}
	const n = 200000
	value := make([]byte, 116) // a small leaf's fragment
	sizeOf := func() int64 {
		var total int64
		fs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "fragments", "zdb-data-*"))
		for _, f := range fs {
			if fi, err := os.Stat(f); err == nil {
				total += fi.Size()
			}
		}
		return total
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	before := sizeOf()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range n {
		c := rawCID(t, fmt.Appendf(nil, "leaf %d", i))
		if _, _, _, err := ns.Write(fungi.FragmentKey(c, fungi.DefaultCoding(), i%20), value); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	disk = float64(sizeOf()-before)/n - float64(len(value))
	heap = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
	runtime.KeepAlive(db)
	return disk, heap
}

// rawCID is the CIDv1 of a raw block holding data.
func rawCID(t testing.TB, data []byte) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randBytes is n pseudo-random bytes from seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
