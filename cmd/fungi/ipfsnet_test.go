package main

// The cluster in the IPFS network, against real Kubo daemons (built by
// scripts/kubo.sh): a Kubo node connected to one fungi node fetches the
// cluster's content over bitswap byte-exact, HAMT directories included,
// and exports the CARs fungi exports; with the IPFS DHT on, a Kubo node
// that knows only another Kubo node finds fungi nodes as providers and
// fetches from them; a libp2p peer that is not a member gets blocks over
// bitswap and nothing else: the fragment exchange, raft, write
// forwarding and add forwarding refuse it.
//
// cmd may import only node and testnet (arch_test.go), so the stranger is
// a plain go-libp2p host speaking the members-only protocols by their
// wire IDs and formats (p2p/fragments.go, consensus/apply.go and
// transport.go, node/api_content.go).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

// kuboNode is a running Kubo daemon with a repo of its own.
type kuboNode struct {
	t     *testing.T
	bin   string
	repo  string
	env   []string
	id    string // peer ID
	swarm string // its /ip4/127.0.0.1/tcp/P/p2p/ID address
}

// kuboDaemon inits a Kubo repo in a temporary directory with the test
// profile (loopback only, no bootstrap peers, loopback addresses in the
// LAN DHT), applies config ("Key=JSON" pairs, as `ipfs config --json`),
// starts `ipfs daemon` with env added to its environment (e.g.
// TEST_DHT_STUB=1), and returns once its API answers. The daemon is shut
// down when the test ends.
func kuboDaemon(t *testing.T, bin string, config []string, env ...string) *kuboNode {
	t.Helper()
	k := &kuboNode{t: t, bin: bin, repo: t.TempDir()}
	k.env = append(append(os.Environ(), "IPFS_PATH="+k.repo, "IPFS_TELEMETRY=off"), env...)
	k.must("init", "-e", "--profile", "test")
	for _, kv := range config {
		key, value, _ := strings.Cut(kv, "=")
		k.must("config", "--json", key, value)
	}
	logf, err := os.Create(filepath.Join(k.repo, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "daemon")
	cmd.Env = k.env
	ready := &readyWriter{w: logf, line: "Daemon is ready", ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = ready, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stop := exec.CommandContext(ctx, bin, "shutdown")
		stop.Env = k.env
		stop.Run()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Logf("Kubo %s did not stop after ipfs shutdown: killed", k.repo)
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-ready.ready:
	case <-exited:
		t.Fatalf("ipfs daemon exited at start:\n%s", k.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("ipfs daemon not ready after 60 s:\n%s", k.log())
	}
	var id struct {
		ID        string
		Addresses []string
	}
	if err := json.Unmarshal([]byte(k.must("id")), &id); err != nil {
		t.Fatal(err)
	}
	k.id = id.ID
	for _, a := range id.Addresses {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") && strings.Count(a, "/") == 6 {
			k.swarm = a
		}
	}
	if k.swarm == "" {
		t.Fatalf("Kubo lists no /ip4/127.0.0.1/tcp address: %v", id.Addresses)
	}
	t.Logf("Kubo %s up at %s", k.id, k.swarm)
	return k
}

// readyWriter passes a daemon's output on and closes ready once line has
// appeared in it.
type readyWriter struct {
	w     io.Writer
	line  string
	ready chan struct{}
	seen  []byte // the output until line appears
	done  bool
}

// Write is called by one goroutine (exec copies the output).
func (r *readyWriter) Write(b []byte) (int, error) {
	if !r.done {
		r.seen = append(r.seen, b...)
		if bytes.Contains(r.seen, []byte(r.line)) {
			r.done, r.seen = true, nil
			close(r.ready)
		}
	}
	return r.w.Write(b)
}

// log is the end of the daemon's output, for failure messages.
func (k *kuboNode) log() string {
	b, _ := os.ReadFile(filepath.Join(k.repo, "daemon.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// run runs an ipfs command against the daemon (for at most two minutes)
// and returns its stdout; the error carries stderr.
func (k *kuboNode) run(args ...string) (string, error) {
	var out bytes.Buffer
	err := k.stream(&out, 2*time.Minute, args...)
	return out.String(), err
}

// must is run, failing the test on an error; the output is trimmed.
func (k *kuboNode) must(args ...string) string {
	k.t.Helper()
	out, err := k.run(args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// stream runs an ipfs command writing its stdout to w, for at most limit.
func (k *kuboNode) stream(w io.Writer, limit time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = k.env
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ipfs %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// sum is what a command wrote: its sha256 and length.
type sum struct {
	sha [32]byte
	n   int64
}

func (s sum) String() string { return fmt.Sprintf("%d bytes, sha256 %x", s.n, s.sha[:8]) }

// hashing runs out(w) with a writer that hashes, and returns the sum.
func hashing(out func(w io.Writer)) sum {
	h := sha256.New()
	cw := &countWriter{w: h}
	out(cw)
	return sum{[32]byte(h.Sum(nil)), cw.n}
}

// seriesValue is the value of one series of node i's /metrics, named as
// it is written there (`name{label="v"}`); 0 when absent.
func (c *cluster) seriesValue(i int, series string) float64 {
	c.t.Helper()
	resp, body := fetch(c.t, "GET", "http://"+c.st.Nodes[i-1].API+"/metrics")
	wantStatus(c.t, "metrics", resp, body, http.StatusOK)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				c.t.Fatalf("metrics line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// ipfsStatus is node i's /api/v0/ipfs/status, for failure messages.
func (c *cluster) ipfsStatus(i int) string {
	resp, err := http.Get("http://" + c.st.Nodes[i-1].API + "/api/v0/ipfs/status")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A Kubo node connected to one node of a 5-node testnet (node 5, which
// stores nothing and reads everything from the others) fetches a 100 MiB
// file and a tree with a HAMT-sharded directory over bitswap, byte-exact;
// its `ipfs dag export` of both equals `fungi dag export`; node 5 counts
// the blocks it sent to a peer that is not a member.
func TestKuboFetchesFromFungi(t *testing.T) {
	bin := kuboBin(t)
	src := t.TempDir()
	big := filepath.Join(src, "big.bin")
	bigSum := randomFile(t, big, 100*mib, 11)
	site := filepath.Join(src, "site")
	randomFile(t, filepath.Join(site, "one.bin"), mib+3, 12)
	randomFile(t, filepath.Join(site, "docs", "deep", "small.bin"), 4000, 13)
	os.WriteFile(filepath.Join(site, "hello.txt"), []byte("hello kubo\n"), 0o644)
	// an empty file: its CID is the empty raw block, which boxo's bitswap
	// server alone never sends (getBlockSizes takes size 0 for "not
	// found"; a Kubo server has the bug): ours does
	os.WriteFile(filepath.Join(site, "empty"), nil, 0o644)
	os.MkdirAll(filepath.Join(site, "empty dir"), 0o755)
	os.Symlink("docs/deep", filepath.Join(site, "a link"))
	// 6,000 entries of 16-byte names shard under both profiles (kubo_test.go)
	many := filepath.Join(site, "many")
	os.MkdirAll(many, 0o755)
	for k := range 6000 {
		os.WriteFile(filepath.Join(many, fmt.Sprintf("entry-%010d", k)), []byte(fmt.Sprintf("entry %d\n", k)), 0o644)
	}

	c := upTestnet(t, testnet.Options{N: 5, Coding: "4/2", NoStore: []int{5}}, 2*time.Minute)
	start := time.Now()
	bigCID := c.addBoth(1, big)
	siteCID := c.addBoth(1, site)
	t.Logf("fungi add of 100 MiB and a tree of %d files: %v", 6000+5, time.Since(start).Round(time.Millisecond))

	// the HAMT directory is one: its node is a UnixFS HAMT shard
	manyCID := c.must(0, "add", "--only-hash", "-q", many)
	var blk bytes.Buffer
	if r := c.fungiOn(5, &blk, "block", "get", manyCID); r.code != 0 {
		t.Fatalf("fungi block get %s: %s", manyCID, r.stderr)
	}
	pn, err := merkledag.DecodeProtobuf(blk.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		t.Fatal(err)
	}
	if fsn.Type() != unixfs.THAMTShard {
		t.Fatalf("many/ (%d entries) is UnixFS type %v, not a HAMT shard", 6000, fsn.Type())
	}

	k := kuboDaemon(t, bin, nil)
	k.must("swarm", "connect", c.st.Nodes[4].Swarm)

	// ipfs cat: the 100 MiB, byte-exact
	start = time.Now()
	got := hashing(func(w io.Writer) {
		if err := k.stream(w, 5*time.Minute, "cat", bigCID); err != nil {
			t.Fatalf("%v\nKubo:\n%s\n%s", err, k.log(), logTail(c.dir, 5))
		}
	})
	t.Logf("ipfs cat of 100 MiB from node 5: %v", time.Since(start).Round(time.Millisecond))
	if want := (sum{bigSum, 100 * mib}); got != want {
		t.Fatalf("ipfs cat %s: %v, want %v", bigCID, got, want)
	}

	// ipfs get of a subdirectory, fetched from node 5 as get walks it
	out := filepath.Join(t.TempDir(), "docs")
	if err := k.stream(io.Discard, time.Minute, "get", "-o", out, siteCID+"/docs"); err != nil {
		t.Fatalf("%v\n%s", err, k.log())
	}
	if want, got := readTree(t, filepath.Join(site, "docs")), readTree(t, out); !maps.Equal(want, got) {
		t.Fatalf("ipfs get %s/docs: %v, want %v", siteCID, got, want)
	}
	// the whole tree: ipfs get walks a directory one block at a time (a
	// round trip per entry: minutes for the HAMT's 6,000, Kubo to Kubo
	// too), so Kubo fetches the DAG first as pin add does, 32 blocks at
	// a time, all from node 5; then get, byte-exact (symlink, empty
	// directory, every HAMT entry)
	start = time.Now()
	if err := k.stream(io.Discard, 2*time.Minute, "pin", "add", siteCID); err != nil {
		t.Fatalf("%v\nKubo:\n%s\n%s", err, k.log(), logTail(c.dir, 5))
	}
	t.Logf("ipfs pin add of the tree from node 5: %v", time.Since(start).Round(time.Millisecond))
	out = filepath.Join(t.TempDir(), "got")
	if err := k.stream(io.Discard, time.Minute, "get", "-o", out, siteCID); err != nil {
		t.Fatalf("%v\n%s", err, k.log())
	}
	if want, got := readTree(t, site), readTree(t, out); !maps.Equal(want, got) {
		for p, e := range want {
			if g, ok := got[p]; !ok || g != e {
				t.Errorf("%s: got %+v (present %v), want %+v", p, g, ok, e)
			}
		}
		t.Fatalf("ipfs get %s: %d entries, want %d", siteCID, len(got), len(want))
	}
	if got := k.must("dag", "resolve", "/ipfs/"+siteCID+"/many"); got != manyCID {
		t.Fatalf("Kubo resolves many/ to %s, fungi to %s", got, manyCID)
	}

	// ipfs dag export equals fungi dag export, for the file and the tree
	for _, root := range []string{bigCID, siteCID} {
		start = time.Now()
		kc := hashing(func(w io.Writer) {
			if err := k.stream(w, 5*time.Minute, "dag", "export", root); err != nil {
				t.Fatal(err)
			}
		})
		fc := hashing(func(w io.Writer) {
			if r := c.fungiOn(5, w, "dag", "export", root); r.code != 0 {
				t.Fatalf("fungi dag export %s: exit %d: %s", root, r.code, r.stderr)
			}
		})
		if kc != fc {
			t.Fatalf("dag export %s: Kubo %v, fungi %v", root, kc, fc)
		}
		t.Logf("dag export %s: %v, the same from both (%v)", root, kc, time.Since(start).Round(time.Millisecond))
	}

	// node 5 sent at least every block of the big file to a non-member (Kubo
	// had none of them and no other peer to get them from)
	blocks := c.statJSON(1, bigCID).Blocks
	sent := c.seriesValue(5, `fungi_bitswap_blocks_sent_total{peer="other"}`)
	bytesSent := c.seriesValue(5, `fungi_bitswap_bytes_sent_total{peer="other"}`)
	if sent < float64(blocks) || bytesSent < 100*mib {
		t.Fatalf("node 5 sent %v blocks (%v bytes) to other peers; want at least the file's %d blocks, 100 MiB", sent, bytesSent, blocks)
	}
	t.Logf("node 5 sent %.0f blocks, %.0f bytes over bitswap to Kubo", sent, bytesSent)
}

// With the IPFS DHT on (testnet --ipfs-dht, every node also bootstrapping
// from Kubo node A), Kubo node B, which knows only A, finds a fungi node
// as a provider of content added on node 1 and fetches it from the
// cluster byte-exact.
func TestKuboFindsFungiInDHT(t *testing.T) {
	bin := kuboBin(t)
	// TEST_DHT_STUB admits loopback peers to Kubo's WAN DHT, the one
	// speaking /ipfs/kad/1.0.0 (the LAN DHT is /ipfs/lan/kad/1.0.0)
	const stub = "TEST_DHT_STUB=1"
	a := kuboDaemon(t, bin, []string{`Routing.Type="dhtserver"`}, stub)
	c := upTestnet(t, testnet.Options{N: 3, Coding: "4/2", IPFSDHT: true, Configure: func(i int, cfg *node.Config) {
		// node 1 (the others' IPFS bootstrap) and A
		boot := append(slices.Clone(*cfg.IPFS.Bootstrap), a.swarm)
		cfg.IPFS.Bootstrap = &boot
	}}, 2*time.Minute)
	fungiPeers := map[string]int{}
	for _, n := range c.st.Nodes {
		fungiPeers[n.Peer] = n.Index
	}
	// B knows A and nothing else
	b := kuboDaemon(t, bin, []string{`Routing.Type="dhtserver"`, `Bootstrap=["` + a.swarm + `"]`}, stub)
	if got := b.must("config", "Bootstrap"); strings.Join(strings.Fields(got), "") != `["`+a.swarm+`"]` {
		t.Fatalf("B's bootstrap list: %s", got)
	}
	if got := b.must("config", "Peering.Peers"); got != "null" {
		t.Fatalf("B's peering list: %s", got)
	}

	src := t.TempDir()
	file := filepath.Join(src, "dht.bin")
	want := randomFile(t, file, 3*mib+77, 21)
	root := c.addBoth(1, file)
	added := time.Now()

	// B finds a fungi node as provider through the DHT
	var found []string
	deadline := added.Add(60 * time.Second)
	for {
		out, err := b.run("--timeout=10s", "routing", "findprovs", "--num-providers=3", root)
		for _, p := range strings.Fields(out) {
			if _, ok := fungiPeers[p]; ok {
				found = append(found, p)
			}
		}
		if len(found) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B found no fungi provider of %s in 60 s (last: %q, %v)\nnode 1 IPFS status: %s\nB:\n%s\n%s",
				root, out, err, c.ipfsStatus(1), b.log(), logTail(c.dir, 3))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("B found providers %v (nodes %v) %v after the add", found, func() (ns []int) {
		for _, p := range found {
			ns = append(ns, fungiPeers[p])
		}
		return ns
	}(), time.Since(added).Round(time.Millisecond))

	// and fetches from them. About one run in five, Kubo's bitswap sends
	// no message at all to the fungi providers it found and stays so (the
	// fungi nodes receive nothing; B's peerstore lists their bitswap
	// protocols; B logs no send failure): the test then disconnects from
	// them and asks again, three times at most.
	start := time.Now()
	var got sum
	for attempt := 1; ; attempt++ {
		var err error
		got = hashing(func(w io.Writer) { err = b.stream(w, 25*time.Second, "cat", root) })
		if err == nil {
			break
		}
		peers, _ := b.run("swarm", "peers")
		bst, _ := b.run("bitswap", "stat")
		var sent strings.Builder
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(&sent, " node %d: %v blocks;", i, c.seriesValue(i, `fungi_bitswap_blocks_sent_total{peer="other"}`))
		}
		if attempt == 3 {
			t.Fatalf("ipfs cat %s on B failed three times; last: %v\nB's peers:\n%s\nB's bitswap:\n%s\nsent to other peers:%s\nB:\n%s\n%s",
				root, err, peers, bst, sent.String(), b.log(), logTail(c.dir, 3))
		}
		t.Logf("ipfs cat %s on B, attempt %d: %v (B's peers: %q; sent to other peers:%s)", root, attempt, err, peers, sent.String())
		// what a user would do next: drop the connections to the
		// providers; B finds them again through the DHT (its bitswap
		// forgets what it thought of them with the connection)
		for p := range fungiPeers {
			b.run("swarm", "disconnect", "/p2p/"+p)
		}
	}
	if got != (sum{want, 3*mib + 77}) {
		t.Fatalf("ipfs cat %s on B: %v, want sha256 %x", root, got, want[:8])
	}
	t.Logf("ipfs cat on B: %v in %v", got, time.Since(start).Round(time.Millisecond))
	var connected []int
	for _, line := range strings.Split(b.must("swarm", "peers"), "\n") {
		if _, id, ok := strings.Cut(line, "/p2p/"); ok {
			if i, ok := fungiPeers[id]; ok {
				connected = append(connected, i)
			}
		}
	}
	if len(connected) == 0 {
		t.Fatalf("B is connected to no fungi node after the fetch: %s", b.must("swarm", "peers"))
	}
	t.Logf("B is connected to fungi nodes %v", connected)
}

// The members-only protocols, by their wire IDs (cmd cannot import p2p
// or consensus).
const (
	fragmentProto   = protocol.ID("/fungi/fragments/1.0.0") // p2p.FragmentProtocol
	raftProto       = protocol.ID("/fungi/raft/1.0.0")      // consensus.RaftProtocol
	raftForwardProt = protocol.ID("/fungi/raft-forward/1.0.0")
	addForwardProto = protocol.ID("/fungi/add/1.0.0") // node's forwardProto
)

// A libp2p peer that is not a member, connected to node 2 of a 3-node
// testnet, fetches the cluster's blocks over bitswap (they verify against
// their CIDs and rebuild the file); every members-only protocol refuses
// it: the fragment exchange answers "not a cluster member" to reads and
// writes, raft and add forwarding reset its streams, write forwarding
// answers "not a member"; the cluster's members and pins are as before.
func TestStrangerIsRefused(t *testing.T) {
	c := upTestnet(t, testnet.Options{N: 3, Coding: "4/2"}, 2*time.Minute)
	src := t.TempDir()
	file := filepath.Join(src, "f.bin")
	want := randomFile(t, file, 2*mib+5, 31)
	root := mustCID(t, c.addBoth(1, file))
	pinsBefore := c.must(1, "pin", "ls")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ai, err := peer.AddrInfoFromString(c.st.Nodes[1].Swarm)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	node2 := ai.ID

	t.Run("bitswap serves it", func(t *testing.T) {
		net := bsnet.NewFromIpfsHost(h)
		bs := bitswap.New(ctx, net, nil, blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore())))
		defer func() {
			bs.Close()
			net.Stop()
		}()
		get := func(c cid.Cid) []byte {
			t.Helper()
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			blk, err := bs.GetBlock(ctx, c)
			if err != nil {
				t.Fatalf("bitswap get %s from node 2: %v", c, err)
			}
			if chk, err := c.Prefix().Sum(blk.RawData()); err != nil || !chk.Equals(c) {
				t.Fatalf("block %s hashes to %s (%v)", c, chk, err)
			}
			return blk.RawData()
		}
		pn, err := merkledag.DecodeProtobuf(get(root))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for _, l := range pn.Links() {
			h.Write(get(l.Cid))
		}
		if len(pn.Links()) < 3 || [32]byte(h.Sum(nil)) != want {
			t.Fatalf("the %d leaves fetched over bitswap do not rebuild the file", len(pn.Links()))
		}
		if n := c.seriesValue(2, `fungi_bitswap_blocks_sent_total{peer="other"}`); n < float64(1+len(pn.Links())) {
			t.Fatalf("node 2 counts %v blocks sent to other peers; want at least %d", n, 1+len(pn.Links()))
		}
	})

	t.Run("fragment exchange refuses it", func(t *testing.T) {
		// wire version 1 (p2p/fragments.go): preamble, then frames of
		// size:u32 kind:u8 id:u32 body; a reply's body starts with a
		// status, 2 being "not a cluster member"
		key := []byte("any key: reads are refused before the lookup")
		put := binary.AppendUvarint(nil, uint64(len(key)))
		put = append(append(put, key...), "a value"...)
		for _, req := range []struct {
			name string
			kind byte
			body []byte
		}{{"get", 1, key}, {"has", 2, key}, {"put", 3, put}, {"delete", 4, key}} {
			s, err := h.NewStream(ctx, node2, fragmentProto)
			if err != nil {
				t.Fatal(err)
			}
			s.SetDeadline(time.Now().Add(10 * time.Second))
			var f []byte
			f = append(f, "FGF\x01"...)
			f = binary.BigEndian.AppendUint32(f, uint32(5+len(req.body)))
			f = append(f, req.kind)
			f = binary.BigEndian.AppendUint32(f, 7)
			f = append(f, req.body...)
			if _, err := s.Write(f); err != nil {
				t.Fatalf("%s: %v", req.name, err)
			}
			s.CloseWrite()
			reply, err := io.ReadAll(s)
			s.Close()
			if err != nil {
				t.Fatalf("%s: reading the reply: %v", req.name, err)
			}
			// the server's preamble, header (size, kind|0x80, id 7), status
			if len(reply) < 4+9+1 || string(reply[:4]) != "FGF\x01" || reply[8] != req.kind|0x80 ||
				binary.BigEndian.Uint32(reply[9:13]) != 7 {
				t.Fatalf("%s: malformed reply %q", req.name, reply)
			}
			if st, msg := reply[13], string(reply[14:]); st != 2 || msg != "not a cluster member" {
				t.Fatalf("%s: status %d %q; want 2 (not a cluster member)", req.name, st, msg)
			}
		}
	})

	// refusedStream opens a stream of proto to node 2, writes req and
	// expects the stream reset before any reply byte.
	refusedStream := func(t *testing.T, proto protocol.ID, req []byte) {
		t.Helper()
		s, err := h.NewStream(ctx, node2, proto)
		if err != nil {
			t.Logf("%s: refused at the open: %v", proto, err)
			return
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		_, werr := s.Write(req)
		b, err := io.ReadAll(s)
		switch {
		case err == nil:
			t.Fatalf("%s: the stream was served (reply %q, write %v)", proto, b, werr)
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("%s: no reset within 10 s (a non-member's stream must be reset at once)", proto)
		case !errors.Is(err, network.ErrReset):
			t.Fatalf("%s: %v; want the stream reset", proto, err)
		}
		t.Logf("%s: reset (%v)", proto, err)
	}
	t.Run("raft resets it", func(t *testing.T) {
		// an AppendEntries (hashicorp/raft's rpc type 0) of nonsense
		refusedStream(t, raftProto, append([]byte{0}, bytes.Repeat([]byte{0x81}, 64)...))
	})
	t.Run("add forwarding resets it", func(t *testing.T) {
		body := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nstranger\r\n--b--\r\n"
		req := fmt.Sprintf("POST /api/v0/add HTTP/1.1\r\nHost: %s\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n%s", node2, len(body), body)
		refusedStream(t, addForwardProto, []byte(req))
	})
	t.Run("write forwarding refuses it", func(t *testing.T) {
		// uvarint length + entry; the reply's first byte is the status,
		// 2 being "not a member" (consensus/apply.go)
		entry := []byte("a forged raft entry")
		s, err := h.NewStream(ctx, node2, raftForwardProt)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		s.Write(append(binary.AppendUvarint(nil, uint64(len(entry))), entry...))
		s.CloseWrite()
		reply, err := io.ReadAll(s)
		if err != nil && !errors.Is(err, network.ErrReset) {
			t.Fatal(err)
		}
		if err == nil && !bytes.Equal(reply, []byte{2}) {
			t.Fatalf("forwarded write: reply %q; want status 2 (not a member)", reply)
		}
		t.Logf("%s: reply %q, %v", raftForwardProt, reply, err)
	})

	// the cluster is as it was: three members, all voters, the same pins
	var peers []string
	for _, n := range c.st.Nodes {
		peers = append(peers, n.Peer)
	}
	slices.Sort(peers)
	for i := 1; i <= 3; i++ {
		st, err := c.status(i)
		if err != nil {
			t.Fatal(err)
		}
		var members []string
		for _, m := range st.Members {
			members = append(members, m.ID)
		}
		slices.Sort(members)
		voters := slices.Sorted(slices.Values(st.Voters))
		if !slices.Equal(members, peers) || !slices.Equal(voters, peers) || len(st.Nonvoters) != 0 || st.Metadata.Members != 3 {
			t.Fatalf("node %d: members %v, voters %v, nonvoters %v; want %v", i, members, voters, st.Nonvoters, peers)
		}
		if slices.Contains(members, h.ID().String()) {
			t.Fatalf("node %d lists the stranger as a member", i)
		}
		if got := c.must(i, "pin", "ls"); got != pinsBefore {
			t.Fatalf("node %d pins %q; before the stranger: %q", i, got, pinsBefore)
		}
	}
}
