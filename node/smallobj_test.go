package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/p2p"
)

// kuboContent is the content of fungi/testdata/cid-vectors.json: the first
// n bytes of SHA256(seed || uint64_be(0)) || SHA256(seed || uint64_be(1)) ...
func kuboContent(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	for i := uint64(0); len(out) < n; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], i)
		sum := sha256.Sum256(append([]byte(seed), b[:]...))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// kuboCID is the CID Kubo 0.43 gave a vector file (default profile).
func kuboCID(t testing.TB, seed string, size int) string {
	t.Helper()
	b, err := os.ReadFile("../fungi/testdata/cid-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Files []struct {
			Seed string `json:"seed"`
			Size int    `json:"size"`
			CID  string `json:"unixfs-v1-2025"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, f := range v.Files {
		if f.Seed == seed && f.Size == size {
			return f.CID
		}
	}
	t.Fatalf("no Kubo vector for %s/%d", seed, size)
	return ""
}

// smallObject is one object of the small-object tests and what it
// must be.
type smallObject struct {
	name string
	data []byte // nil for a directory
	path string
	// kubo is the CID Kubo gives it (a vector, or the raw CID of a file
	// that fits in one chunk, as Kubo makes it with raw leaves)
	kubo   string
	inline bool // every leaf inline: no fragment anywhere
	root   string
	files  map[string][]byte // a directory's files
}

// smallObjects writes the objects: sizes 0, 1, threshold-1, threshold,
// threshold+1, 1 KiB, a file of three 1 MiB leaves and a 5-byte tail
// (Kubo's vector) and a directory of small files.
func smallObjects(t testing.TB, dir string) []*smallObject {
	t.Helper()
	rnd := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	raw := func(b []byte) string { return rawCID(t, b).String() }
	var objs []*smallObject
	for _, o := range []struct {
		name   string
		data   []byte
		kubo   string
		inline bool
	}{
		{"empty", kuboContent("fungi-a", 0), kuboCID(t, "fungi-a", 0), true},
		{"one", kuboContent("fungi-a", 1), kuboCID(t, "fungi-a", 1), true},
		{"threshold-1", rnd(fungi.InlineLeafMax - 1), "", true},
		{"threshold", rnd(fungi.InlineLeafMax), "", true},
		{"threshold+1", rnd(fungi.InlineLeafMax + 1), "", false},
		{"kib", rnd(1024), "", true},
		{"tail", kuboContent("fungi-b", 3145733), kuboCID(t, "fungi-b", 3145733), false},
	} {
		if o.kubo == "" {
			o.kubo = raw(o.data)
		}
		p := filepath.Join(dir, o.name)
		if err := os.WriteFile(p, o.data, 0o644); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &smallObject{name: o.name, data: o.data, path: p, kubo: o.kubo, inline: o.inline})
	}
	site := filepath.Join(dir, "site")
	files := map[string][]byte{"index.html": rnd(700), "css/style.css": rnd(1024), "img/logo.png": rnd(fungi.InlineLeafMax + 1), "js/app.js": rnd(5000)}
	for name, data := range files {
		p := filepath.Join(site, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs = append(objs, &smallObject{name: "site", path: site, files: files})
	return objs
}

// Small objects go through the cluster as large ones do (issue 15):
// sizes 0, 1, threshold-1, threshold, threshold+1, 1 KiB, a file whose
// last leaf is small, and a directory of small files, added on one node
// of a real cluster (in-process daemons over loopback libp2p and raft).
// Kept inline, they are stored with no fragment write, keep Kubo's CIDs
// (and --only-hash's), read back whole on another node (cat, ranges, the
// gateway with its CAR export, bitswap to a stranger, the FUSE mount)
// with no fragment fetched, stat and check say full, the scrubber finds
// nothing missing; after the loss of N-K nodes (the coding is 3/4 on 7
// nodes, one fragment per node, so 4 non-voters go) every object still
// reads and check says what is left; unpinning and garbage collection
// delete no fragment of a live object.
func TestSmallObjectsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("7 daemons")
	}
	const n = 7
	coding := "3/4"
	dc := startDaemonCluster(t, n, func(c *Config) {
		c.Coding = coding
		c.Repair.ScrubInterval = "1s"
	})
	fc, _ := fungi.ParseCoding(coding)
	leader := dc.leader()
	st, err := dc.status(leader)
	if err != nil {
		t.Fatal(err)
	}
	// the reader is a voter that does not lead (it outlives the kill);
	// adds go through a non-voter (forwarded to the leader)
	var reader, adder *daemonNode
	for _, dn := range dc.nodes {
		switch {
		case dn != leader && slices.Contains(st.Voters, dn.peer) && reader == nil:
			reader = dn
		case slices.Contains(st.Nonvoters, dn.peer) && adder == nil:
			adder = dn
		}
	}
	if reader == nil || adder == nil {
		t.Fatalf("no follower voter or no non-voter in %+v", st)
	}
	objs := smallObjects(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// adds: inline ones write no fragment at all
	for _, inline := range []bool{true, false} {
		before := dc.fragments()
		for _, o := range objs {
			if o.inline != inline {
				continue
			}
			res, err := adder.api.Add(ctx, o.path, AddOptions{})
			if err != nil {
				t.Fatalf("add %s: %v", o.name, err)
			}
			o.root = res.Root
			hash, err := HashPath(ctx, o.path, HashOptions{})
			if err != nil || hash != o.root {
				t.Fatalf("%s: added as %s, --only-hash says %s (%v)", o.name, o.root, hash, err)
			}
			if o.kubo != "" && o.root != o.kubo {
				t.Fatalf("%s: added as %s, Kubo says %s", o.name, o.root, o.kubo)
			}
			if inline && res.Stored != 0 {
				t.Fatalf("%s: %d bytes of fragments stored", o.name, res.Stored)
			}
		}
		if after := dc.fragments(); inline && after != before {
			t.Fatalf("adding inline objects wrote %d fragments", after-before)
		}
	}

	// every byte on another node; small objects without a fragment fetch
	fetched := func() float64 { return dc.metric(reader, "fungi_fragments_fetched_total") }
	first := true // the first reads: nothing cached yet
	readAll := func(who *daemonNode) {
		t.Helper()
		defer func() { first = false }()
		for _, o := range objs {
			f0 := fetched()
			if o.files != nil {
				for name, data := range o.files {
					got := gatewayGet(t, who, "/ipfs/"+o.root+"/"+name, "")
					if !bytes.Equal(got, data) {
						t.Fatalf("%s/%s through the gateway of node %d: %d bytes, want %d", o.name, name, who.i, len(got), len(data))
					}
				}
				continue
			}
			if got := catAll(t, who, o.root); !bytes.Equal(got, o.data) {
				t.Fatalf("cat %s on node %d: %d bytes, want %d", o.name, who.i, len(got), len(o.data))
			}
			d := fetched() - f0
			if who == reader && o.inline && d != 0 {
				t.Fatalf("reading %s (%d bytes, inline) fetched %v fragments", o.name, len(o.data), d)
			}
			if who == reader && !o.inline && first && d < float64(fc.K) {
				t.Fatalf("reading %s (%d bytes, dispersed) counted %v fragments fetched: the count is broken", o.name, len(o.data), d)
			}
		}
	}
	readAll(reader)
	t.Logf("%d objects added on node %d, read on node %d", len(objs), adder.i, reader.i)

	byName := map[string]*smallObject{}
	for _, o := range objs {
		byName[o.name] = o
	}
	tail := byName["tail"]
	// ranges: across the tail's last leaves, inside a small object
	for _, r := range []struct {
		o         *smallObject
		off, size int64
	}{{tail, 3<<20 - 10, 15}, {tail, 3 << 20, 5}, {byName["kib"], 100, 200}, {byName["threshold"], 0, 1}} {
		pc, _ := ParseCID(r.o.root)
		rc, _, err := reader.api.CatRange(ctx, pc, r.off, r.size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if want := r.o.data[r.off : r.off+r.size]; err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s bytes %d+%d: %q %v, want %q", r.o.name, r.off, r.size, got, err, want)
		}
		hdr := fmt.Sprintf("Range: bytes=%d-%d", r.off, r.off+r.size-1)
		if got := gatewayGet(t, reader, "/ipfs/"+r.o.root, hdr); !bytes.Equal(got, r.o.data[r.off:r.off+r.size]) {
			t.Fatalf("gateway %s %s: %d bytes", r.o.name, hdr, len(got))
		}
	}

	// the gateway's CAR export holds every block, the inline ones too
	for _, o := range objs {
		car := gatewayGet(t, reader, "/ipfs/"+o.root+"?format=car", "")
		got, err := carBlocks(car)
		if err != nil {
			t.Fatalf("CAR of %s: %v", o.name, err)
		}
		if o.data != nil && len(o.data) <= fungi.InlineLeafMax && (len(got) != 1 || !bytes.Equal(got[0].RawData(), o.data)) {
			t.Fatalf("CAR of %s: %d blocks", o.name, len(got))
		}
		if o == tail && len(got) != 5 {
			t.Fatalf("CAR of %s: %d blocks, want a root and 4 leaves", o.name, len(got))
		}
	}

	// dag export (CAR through the API) and block get: the inline blocks too
	for _, o := range []*smallObject{byName["one"], tail} {
		var car bytes.Buffer
		pc, _ := ParseCID(o.root)
		if err := reader.api.ExportCAR(ctx, pc, &car, nil); err != nil {
			t.Fatalf("dag export %s: %v", o.name, err)
		}
		got, err := carBlocks(car.Bytes())
		if err != nil || len(got) == 0 {
			t.Fatalf("dag export %s: %d blocks, %v", o.name, len(got), err)
		}
		last := rawCID(t, o.data[len(o.data)/(1<<20)<<20:])
		blk, err := reader.api.GetBlock(ctx, last)
		if err != nil || !bytes.Equal(blk.RawData(), o.data[len(o.data)/(1<<20)<<20:]) {
			t.Fatalf("block get of %s's last leaf: %v", o.name, err)
		}
	}
	// fungi get of the directory: every small file
	out := filepath.Join(t.TempDir(), "site")
	siteCID, _ := ParseCID(byName["site"].root)
	if err := reader.api.Get(ctx, siteCID, out, nil); err != nil {
		t.Fatalf("get of the directory: %v", err)
	}
	for name, data := range byName["site"].files {
		if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get: %s: %d bytes, %v", name, len(got), err)
		}
	}

	// bitswap serves the inline blocks to a stranger
	bitswapFetch(t, reader, rawCID(t, byName["kib"].data), byName["kib"].data)
	bitswapFetch(t, reader, rawCID(t, tail.data[3<<20:]), tail.data[3<<20:])

	// stat: inline blocks have no fragments and are full
	for _, o := range objs {
		pc, _ := ParseCID(o.root)
		s, err := reader.api.Stat(ctx, pc, true)
		if err != nil {
			t.Fatal(err)
		}
		inline, dispersed := 0, 0
		for _, l := range s.Layout {
			if l.Inline {
				inline++
				if len(l.Holders) != 0 || len(l.Missing) != 0 {
					t.Fatalf("%s: inline block %+v", o.name, l)
				}
			} else {
				dispersed++
			}
		}
		switch {
		case s.Health != "full" || len(s.Damaged) != 0 || s.SpareFragments != fc.N-fc.K:
			t.Fatalf("%s: health %s, %d damaged, spare %d", o.name, s.Health, len(s.Damaged), s.SpareFragments)
		case s.Inline != inline || (o.inline && (dispersed != 0 || inline == 0 || len(s.Holders) != 0)):
			t.Fatalf("%s: %d inline, %d dispersed blocks, %d holders (stat says %d inline)", o.name, inline, dispersed, len(s.Holders), s.Inline)
		case o.inline && s.TolerableNodeLosses != n-1:
			t.Fatalf("%s: all inline, can lose %d nodes, want %d", o.name, s.TolerableNodeLosses, n-1)
		case o == tail && (inline != 1 || dispersed != 3):
			t.Fatalf("tail: %d inline, %d dispersed blocks", inline, dispersed)
		}
	}
	check := func(who *daemonNode, want map[string]string) {
		t.Helper()
		var roots []string
		for _, o := range objs {
			roots = append(roots, o.root)
		}
		rep, err := who.api.Check(ctx, false, roots...)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Objects {
			for _, o := range objs {
				if o.root == r.Root && r.Health != want[o.name] {
					t.Fatalf("check %s on node %d: %+v, want %s", o.name, who.i, r, want[o.name])
				}
			}
		}
		if rep.Reported != 0 {
			t.Fatalf("check reported %d fragments for repair", rep.Reported)
		}
	}
	full := map[string]string{}
	for _, o := range objs {
		full[o.name] = "full"
	}
	check(reader, full)

	// the scrubber of every node passes over its fragments and misses none
	since := time.Now()
	dc.waitFor("a scrub pass on every node", 30*time.Second, func() error {
		for _, dn := range dc.nodes {
			rs, err := dn.api.RepoStat(ctx)
			if err != nil || rs.Scrub == nil {
				return fmt.Errorf("node %d: %v", dn.i, err)
			}
			if rs.Scrub.LastPass.Before(since) {
				return fmt.Errorf("node %d: last pass %v", dn.i, rs.Scrub.LastPass)
			}
			if rs.Scrub.Missing != 0 || rs.Scrub.Corrupt != 0 {
				return fmt.Errorf("node %d: scrub found %d missing, %d corrupt", dn.i, rs.Scrub.Missing, rs.Scrub.Corrupt)
			}
		}
		return nil
	})

	// the shared tree: files write, read through the mount
	if _, err := adder.api.AddReader(ctx, "note.txt", bytes.NewReader(byName["kib"].data), AddOptions{ToFiles: "/notes/note.txt", FilesReplace: true}); err != nil {
		t.Fatal(err)
	}
	t.Log("stat, check, scrub passes: all full")
	readMount(t, reader, map[string][]byte{
		"notes/note.txt":                               byName["kib"].data,
		".ipfs/" + byName["one"].root:                  byName["one"].data,
		".ipfs/" + tail.root:                           tail.data,
		".ipfs/" + byName["empty"].root:                nil,
		".ipfs/" + byName["site"].root + "/index.html": byName["site"].files["index.html"],
	})

	// lose N-K nodes: non-voters only, so the cluster keeps its quorum
	var lost []*daemonNode
	for _, id := range st.Nonvoters {
		if dn := dc.byPeer(id); dn != nil && len(lost) < fc.N-fc.K {
			lost = append(lost, dn)
		}
	}
	if len(lost) != fc.N-fc.K {
		t.Fatalf("%d non-voters, %d to lose", len(lost), fc.N-fc.K)
	}
	for _, dn := range lost {
		dc.stop(dn)
	}
	t.Logf("stopped %d non-voters", len(lost))
	readAll(reader)
	after := map[string]string{}
	for _, o := range objs {
		after[o.name] = "full"
		if !o.inline {
			after[o.name] = "at_risk" // K fragments left of each dispersed block
		}
	}
	check(reader, after)

	// unpinned and collected: no fragment of a live object goes
	var small []string
	for _, o := range objs {
		if o.inline {
			small = append(small, o.root)
		}
	}
	if _, err := reader.api.Pin(ctx, false, small...); err != nil {
		t.Fatal(err)
	}
	before := dc.fragments()
	for _, dn := range dc.nodes {
		if dn.alive {
			if _, err := dn.api.GC(ctx, 0); err != nil {
				t.Fatalf("gc on node %d: %v", dn.i, err)
			}
		}
	}
	if after := dc.fragments(); after != before {
		t.Fatalf("gc deleted %d fragments of live objects", before-after)
	}
	readAll(reader)
}

// gatewayGet GETs path from dn's gateway (with one extra header line,
// e.g. a Range).
func gatewayGet(t testing.TB, dn *daemonNode, path, header string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+dn.gw+path, nil)
	if k, v, ok := strings.Cut(header, ": "); ok {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s %s on node %d: %s %v %s", path, header, dn.i, resp.Status, err, b)
	}
	return b
}

// carBlocks reads a CAR's blocks (each verified against its CID).
func carBlocks(car []byte) ([]interface{ RawData() []byte }, error) {
	cr, err := fungi.NewCARReader(bytes.NewReader(car), fungi.CAROptions{})
	if err != nil {
		return nil, err
	}
	var out []interface{ RawData() []byte }
	for {
		blk, err := cr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, blk)
	}
}

// bitswapFetch has a stranger (not a member) fetch block c from dn over
// bitswap, as a Kubo node does.
func bitswapFetch(t testing.TB, dn *daemonNode, c cid.Cid, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pc := p2p.DefaultConfig()
	pc.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	h, err := p2p.New(ctx, pc, priv)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	bs, err := h.StartBitswap(noBlocks{}, p2p.BitswapConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	ctx2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	id, err := dn.api.ID(ctx2)
	cancel2()
	if err != nil {
		t.Fatal(err)
	}
	ai, err := peer.AddrInfoFromString(id.Addrs[0] + "/p2p/" + id.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	blk, err := bs.GetBlock(ctx, c)
	if err != nil || !bytes.Equal(blk.RawData(), want) {
		t.Fatalf("bitswap %s from node %d: %v", c, dn.i, err)
	}
}

// readMount mounts the shared tree on dn and reads files through it (in
// a child process: a daemon never reads its own mount) when FUSE can be
// used here.
func readMount(t testing.TB, dn *daemonNode, files map[string][]byte) {
	t.Helper()
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		t.Logf("the mount is not read: no FUSE here (%v)", err)
		return
	} else {
		f.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "mnt")
	os.MkdirAll(dir, 0o755)
	if _, err := dn.api.Mount(ctx, dir); err != nil {
		t.Logf("the mount is not read: %v", err)
		return
	}
	defer dn.api.Unmount(context.Background(), dir)
	for name, want := range files {
		got, err := exec.CommandContext(ctx, "cat", filepath.Join(dir, name)).Output()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s through the mount of node %d: %d bytes, want %d (%v)", name, dn.i, len(got), len(want), err)
		}
	}
	t.Logf("%d files read through the mount of node %d", len(files), dn.i)
}

// noBlocks is a bitswap server with nothing to serve (a fetching peer).
type noBlocks struct{}

func (noBlocks) GetBlock(_ context.Context, c cid.Cid) (blocks.Block, error) {
	return nil, ipld.ErrNotFound{Cid: c}
}
func (noBlocks) BlockSize(_ context.Context, c cid.Cid) (int, error) {
	return 0, ipld.ErrNotFound{Cid: c}
}
func (noBlocks) HasBlock(context.Context, cid.Cid) (bool, error) { return false, nil }
