package consensus

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
)

// What one byte of manifest costs a member (issue 15: where keeping a
// small leaf in the replicated metadata beats coding it). Each member
// keeps every manifest in the FSM's memory, in raft's log (BoltDB, until
// a snapshot compacts it, leaving TrailingLogs entries) and in its
// snapshots (two retained). The test commits R manifests of one size,
// as an add does (Batch(PutManifest, Pin)), on a one-node cluster, and
// measures the log's pages, the snapshot's bytes and the heap per
// manifest; the table in docs/architecture.md ("Small objects") comes
// from `go test -run TestManifestStorageCost -v ./consensus/`.
func TestManifestStorageCost(t *testing.T) {
	const r = 400
	sizes := []int{300, 300 + 1062, 300 + 2086, 300 + 4134}
	type row struct{ log, snap, heap float64 }
	rows := make([]row, len(sizes))
	for i, size := range sizes {
		c := newCluster(t, 1, nil)
		tn := c.nodes[0]
		rng := rand.New(rand.NewPCG(uint64(size), 15))
		datas := make([][]byte, r)
		for j := range datas {
			datas[j] = make([]byte, size)
			for k := range datas[j] {
				datas[j][k] = byte(rng.Uint32())
			}
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32) // concurrent adds batch as they do in a daemon
		for j := range datas {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				root := fmt.Sprintf("bafkreiroot%06d", j)
				apply(t, tn.n, Batch(PutManifest(root, uint64(size), datas[j]), Pin(root)))
			})
		}
		wg.Wait()
		datas = nil
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if got := tn.n.FSM().Stats().Manifests; got != r {
			t.Fatalf("%d manifests applied, want %d", got, r)
		}
		if err := tn.n.Snapshot(); err != nil {
			t.Fatal(err)
		}
		snap := newestSnapshot(t, tn.dir)
		tn.crash()
		rows[i] = row{
			log:  float64(logBucketBytes(t, filepath.Join(tn.dir, "raft.db"))) / r,
			snap: float64(snap) / r,
			heap: float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / r,
		}
		t.Logf("manifest of %5d bytes: raft log %7.0f B/entry, snapshot %7.0f B/manifest, FSM heap ~%7.0f B/manifest",
			size, rows[i].log, rows[i].snap, rows[i].heap)
	}
	// per byte added to a manifest, between the smallest and the largest
	d := float64(sizes[len(sizes)-1] - sizes[0])
	last := rows[len(rows)-1]
	logPer, snapPer := (last.log-rows[0].log)/d, (last.snap-rows[0].snap)/d
	t.Logf("per manifest byte: raft log %.2f B, snapshot %.2f B (two retained), FSM memory 1 B (the bytes are kept as they are)", logPer, snapPer)
	if snapPer < 0.99 || snapPer > 1.1 {
		t.Fatalf("a snapshot stores %.2f bytes per manifest byte", snapPer)
	}
	if logPer < 0.99 {
		t.Fatalf("the log stores %.2f bytes per manifest byte", logPer)
	}
}

// logBucketBytes is what raft's log takes in raft.db: the pages of its
// "logs" bucket (BoltDB leaves are split half full, and big values take
// overflow pages).
func logBucketBytes(t testing.TB, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		if b == nil {
			return fmt.Errorf("no logs bucket")
		}
		st := b.Stats()
		n = st.BranchAlloc + st.LeafAlloc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newestSnapshot is the size of the last snapshot's state.
func newestSnapshot(t testing.TB, dir string) int64 {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	var newest string
	for _, m := range ms {
		if m > newest {
			newest = m
		}
	}
	fi, err := os.Stat(newest)
	if err != nil {
		t.Fatalf("no snapshot in %s: %v", dir, err)
	}
	return fi.Size()
}
