package main

// Ingest: `fungi pin add` of content only a Kubo node has fetches it over
// bitswap and stores it in the cluster, so the cluster serves it with Kubo
// gone; content nobody has fails after the timeout and leaves nothing.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

func TestPinAddFromKubo(t *testing.T) {
	bin := kuboBin(t)
	src := t.TempDir()
	big := filepath.Join(src, "big.bin")
	bigSum := randomFile(t, big, 64*mib, 21)
	site := filepath.Join(src, "site")
	randomFile(t, filepath.Join(site, "one.bin"), 3*mib+5, 22)
	randomFile(t, filepath.Join(site, "docs", "small.bin"), 5000, 23)
	os.WriteFile(filepath.Join(site, "hello.txt"), []byte("hello from kubo\n"), 0o644)
	many := filepath.Join(site, "many")
	os.MkdirAll(many, 0o755)
	for i := range 3000 { // a HAMT-sharded directory in Kubo's default profile
		os.WriteFile(filepath.Join(many, fmt.Sprintf("entry-%010d", i)), []byte(fmt.Sprintf("entry %d\n", i)), 0o644)
	}
	partial := filepath.Join(src, "partial.bin")
	randomFile(t, partial, 4*mib, 24)

	settings, err := testnet.ParseSettings([]string{"gateway.fetch_remote=true"})
	if err != nil {
		t.Fatal(err)
	}
	c := upTestnet(t, testnet.Options{N: 3, Coding: "2/1", Set: settings}, 2*time.Minute)
	k := kuboDaemon(t, bin, nil)
	bigCID := strings.TrimSpace(k.must("add", "-Q", big))
	siteCID := strings.TrimSpace(k.must("add", "-Q", "-r", site))
	// a DAG Kubo has only in part: its second leaf is removed
	partialCID := strings.TrimSpace(k.must("add", "-Q", "--pin=false", partial))
	leaves := strings.Fields(k.must("refs", partialCID))
	if len(leaves) < 2 {
		t.Fatalf("partial file has %d leaves", len(leaves))
	}
	k.must("block", "rm", leaves[1])

	// Kubo is connected to a follower and to the leader: a pin add on the
	// follower streams the DAG to the leader as a CAR, one on the leader
	// imports the fetched blocks directly
	lead := c.leader([]int{1, 2, 3})
	fol := 1 + lead%3
	k.must("swarm", "connect", c.st.Nodes[fol-1].Swarm)
	k.must("swarm", "connect", c.st.Nodes[lead-1].Swarm)

	// the gateway with fetch_remote reads Kubo's content before any pin
	resp, body := fetch(t, "GET", c.gatewayOf(fol)+"/ipfs/"+siteCID+"/hello.txt")
	wantStatus(t, "fetch_remote gateway read", resp, body, 200)
	if string(body) != "hello from kubo\n" {
		t.Fatalf("fetch_remote: got %q", body)
	}

	pinsBefore := c.must(1, "pin", "ls")
	stat := func(i int) node.RepoStat {
		var st node.RepoStat
		if err := json.Unmarshal([]byte(c.must(i, "repo", "stat", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := []node.RepoStat{stat(1), stat(2), stat(3)}

	// a DAG with a block no peer has: fails after the timeout, nothing left
	start := time.Now()
	r := c.fungiOn(fol, nil, "pin", "add", "--timeout", "3s", partialCID)
	oneLineError(t, "pin add of a partial DAG", r, "no IPFS peer delivered a block for 3s")
	t.Logf("partial DAG: %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
	// a CID nobody has at all
	r = c.fungiOn(lead, nil, "pin", "add", "--timeout", "2s", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	oneLineError(t, "pin add of a CID nobody has", r, "no IPFS peer delivered a block for 2s")
	if got := c.must(1, "pin", "ls"); got != pinsBefore {
		t.Fatalf("pins changed after failed ingests:\n%s\nwas\n%s", got, pinsBefore)
	}
	for i, b := range before {
		// the failed import deleted the fragments it had stored
		if a := stat(i + 1); a.Fragments != b.Fragments {
			t.Errorf("node %d holds %d fragments after the failed ingest, %d before", i+1, a.Fragments, b.Fragments)
		}
	}
	if r := c.fungiOn(1, nil, "cat", partialCID); r.code == 0 {
		t.Errorf("fungi cat of the failed ingest's root succeeded")
	}

	// the 64 MiB file through the follower, the directory on the leader
	start = time.Now()
	if out := c.must(fol, "pin", "add", bigCID); !strings.Contains(out, "pinned "+bigCID) {
		t.Fatalf("pin add printed %q", out)
	}
	t.Logf("pin add of 64 MiB from Kubo on a follower: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if out := c.must(lead, "pin", "add", siteCID); !strings.Contains(out, "pinned "+siteCID) {
		t.Fatalf("pin add printed %q", out)
	}
	t.Logf("pin add of a %d-file tree from Kubo on the leader: %v", 3003, time.Since(start).Round(time.Millisecond))
	// idempotent: pinned again without fetching
	c.must(fol, "pin", "add", bigCID, siteCID)

	// Kubo gone: every node serves both from the cluster
	k.must("shutdown")
	time.Sleep(time.Second)
	for i := 1; i <= 3; i++ {
		pins := c.must(i, "pin", "ls")
		if !strings.Contains(pins, bigCID) || !strings.Contains(pins, siteCID) {
			t.Fatalf("node %d pins: %s", i, pins)
		}
	}
	h := sha256.New()
	if r := c.fungiOn(3, h, "cat", bigCID); r.code != 0 {
		t.Fatalf("fungi cat on node 3: %s", r.stderr)
	}
	if [32]byte(h.Sum(nil)) != bigSum {
		t.Fatal("the ingested file differs from the original")
	}
	dst := filepath.Join(t.TempDir(), "got")
	c.must(3, "get", "-o", dst, siteCID)
	if err := sameTree(site, dst); err != nil {
		t.Fatalf("the ingested tree differs: %v", err)
	}
	// dispersed: the leaves are fragments on the pool, not one node's copy
	after := []node.RepoStat{stat(1), stat(2), stat(3)}
	for i := range after {
		if grown := after[i].FragmentBytes - before[i].FragmentBytes; grown < 16*mib {
			t.Errorf("node %d stored %d fragment bytes for 67 MiB at 2/1: not dispersed", i+1, grown)
		}
	}
	// the same CIDs as Kubo: the cluster answers for Kubo's root
	if got := c.must(1, "block", "stat", bigCID); !strings.Contains(got, bigCID) {
		t.Fatalf("block stat %s: %s", bigCID, got)
	}
}
