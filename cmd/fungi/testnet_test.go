package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fungistor/fungistor/node"
)

// fungi testnet: up, status, kill and restart one node, down; every node
// is a real daemon process.
func TestTestnetLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tn")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(fungiBin, append([]string{"testnet"}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("down", "--dir", dir) })
	if out, err := run("up", "-n", "3", "--dir", dir, "--set", "cluster.domain=lab 1", "--set", `gateway.retrieval_timeout="45s"`); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	if out, err := run("up", "-n", "3", "--dir", dir); err == nil || !strings.Contains(out, "already holds a testnet") {
		t.Fatalf("second up: %q", out)
	}
	status := func() []map[string]any {
		t.Helper()
		out, err := exec.Command(fungiBin, "testnet", "status", "--dir", dir, "--json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var st []map[string]any
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		return st
	}
	st := status()
	if len(st) != 3 {
		t.Fatalf("status: %v", st)
	}
	leaders := 0
	gateways := map[string]bool{}
	for _, n := range st {
		if n["alive"] != true || n["api"] == "" || n["index"] == nil || n["peer_id"] == "" {
			t.Fatalf("node not alive: %v", n)
		}
		// every node has a gateway of its own, and the --set settings
		gw, _ := n["gateway"].(string)
		if !strings.HasPrefix(gw, "127.0.0.1:") || gw == n["api"] || gateways[gw] {
			t.Fatalf("node %v: gateway %q (others: %v)", n["index"], gw, gateways)
		}
		gateways[gw] = true
		var cfg node.Config
		b, _ := os.ReadFile(filepath.Join(n["path"].(string), "config.json"))
		if err := json.Unmarshal(b, &cfg); err != nil || cfg.Gateway.Listen != gw || cfg.Cluster.Domain != "lab 1" || cfg.Gateway.RetrievalTimeout != "45s" {
			t.Fatalf("node %v's config: %v %s", n["index"], err, b)
		}
		switch n["role"] {
		case "leader":
			leaders++
		case "voter", "nonvoter":
		default:
			t.Fatalf("node without a role: %v", n)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders: %v", leaders, st)
	}
	if out, err := run("status", "--dir", dir); err != nil || strings.Count(out, "  gateway 127.0.0.1:") != 3 {
		t.Fatalf("status: %v\n%s", err, out)
	}
	// the nodes find each other through the DHT (bootstrapped from node 1)
	var peers []map[string]any
	for i := 0; i < 100; i++ {
		cmd := exec.Command(fungiBin, "cluster", "peers", "--json")
		cmd.Env = append(os.Environ(), "FUNGI_PATH="+filepath.Join(dir, "node3"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cluster peers: %v", err)
		}
		peers = nil
		json.Unmarshal(out, &peers)
		connected := 0
		for _, p := range peers {
			if p["connected"] == true {
				connected++
			}
		}
		if connected >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(peers) < 2 {
		t.Fatalf("node 3 sees peers %v", peers)
	}
	if out, err := run("stop", "--dir", dir, "--kill", "2"); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	if st = status(); st[1]["alive"] != false || st[0]["alive"] != true {
		t.Fatalf("after kill: %v", st)
	}
	if out, err := run("start", "--dir", dir, "2"); err != nil {
		t.Fatalf("start: %v %s", err, out)
	}
	if st = status(); st[1]["alive"] != true {
		t.Fatalf("after restart: %v", st)
	}
	// a user addresses node I with FUNGI_PATH=DIR/nodeI
	add := exec.Command(fungiBin, "add", "-q", "zdb_test.go")
	add.Env = append(os.Environ(), "FUNGI_PATH="+filepath.Join(dir, "node2"))
	if out, err := add.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "bafk") {
		t.Fatalf("add on node 2: %q %v", out, err)
	}
	for _, bad := range [][]string{{"stop", "--dir", dir, "9"}, {"stop", "--dir", dir}, {"up", "--dir", dir, "-n", "0"}, {"frob", "--dir", dir}} {
		if out, err := run(bad...); err == nil || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("%v: %q %v; want a one-line error", bad, out, err)
		}
	}
	if out, err := run("down", "--dir", dir); err != nil {
		t.Fatalf("down: %v %s", err, out)
	}
	if out, err := run("status", "--dir", dir); err == nil || !strings.Contains(out, "no testnet here") {
		t.Fatalf("status after down: %q", out)
	}
}

// fungi testnet up --latency: the simulated delays show in the RTTs the
// nodes measure (node 1 is 2 ms from node 2 and 60 ms from node 3, each
// way); --no-store lands in the node's config.
func TestTestnetLatency(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tn")
	for _, bad := range [][]string{{"--latency", "0,1;1,0"}, {"--latency", "0,1,x;1,0,1;1,1,0"}, {"--latency", "regions=1,2:5ms"}, {"--no-store", "4"},
		{"--set", "gateway.lisen=x"}, {"--set", "cluster.voters=4"}, {"--set", "cluster.no_store=maybe"}, {"--set", "nokey"}} {
		out, err := exec.Command(fungiBin, append([]string{"testnet", "up", "-n", "3", "--dir", dir}, bad...)...).CombinedOutput()
		if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 || !strings.Contains(string(out), bad[0]+": ") {
			t.Errorf("%v: %q %v; want a one-line error", bad, out, err)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a rejected up left a testnet directory")
	}
	t.Cleanup(func() {
		// SIGKILL first: a clean shutdown takes seconds per node
		exec.Command(fungiBin, "testnet", "stop", "--dir", dir, "--kill", "1", "2", "3").Run()
		exec.Command(fungiBin, "testnet", "down", "--dir", dir).Run()
	})
	out, err := exec.Command(fungiBin, "testnet", "up", "-n", "3", "--dir", dir,
		"--latency", "0,2,60;2,0,2;60,2,0", "--no-store", "3", "--set", "gateway.listen=").CombinedOutput()
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "testnet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Nodes []struct {
			Index   int    `json:"index"`
			Path    string `json:"path"`
			Peer    string `json:"peer"`
			Gateway string `json:"gateway"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(b, &st); err != nil || len(st.Nodes) != 3 {
		t.Fatalf("testnet.json: %v: %s", err, b)
	}
	// --set gateway.listen= wins over the port the testnet picked
	for _, n := range st.Nodes {
		if n.Gateway != "" {
			t.Fatalf("node %d has gateway %q after --set gateway.listen=", n.Index, n.Gateway)
		}
	}
	index := map[string]int{}
	for _, n := range st.Nodes {
		if n.Peer == "" {
			t.Fatalf("node %d has no peer ID: %s", n.Index, b)
		}
		index[n.Peer] = n.Index
	}
	var cfg struct {
		P2P struct {
			Latency map[string]string `json:"latency"`
		} `json:"p2p"`
		Cluster struct {
			NoStore bool `json:"no_store"`
		} `json:"cluster"`
		Gateway struct {
			Listen *string `json:"listen"`
		} `json:"gateway"`
	}
	b, _ = os.ReadFile(filepath.Join(st.Nodes[0].Path, "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{st.Nodes[1].Peer: "2ms", st.Nodes[2].Peer: "60ms"}; !reflect.DeepEqual(cfg.P2P.Latency, want) || cfg.Cluster.NoStore ||
		cfg.Gateway.Listen == nil || *cfg.Gateway.Listen != "" {
		t.Fatalf("node 1's config: %s", b)
	}
	b, _ = os.ReadFile(filepath.Join(st.Nodes[2].Path, "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil || !cfg.Cluster.NoStore {
		t.Fatalf("node 3's config: %v %s", err, b)
	}

	// RTTs come from a ping on connect and every 10 s
	var rtt map[int]float64
	for deadline := time.Now().Add(25 * time.Second); ; {
		cmd := exec.Command(fungiBin, "cluster", "peers", "--json")
		cmd.Env = append(os.Environ(), "FUNGI_PATH="+st.Nodes[0].Path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cluster peers: %v", err)
		}
		var peers []struct {
			PeerID string  `json:"peer_id"`
			RTT    float64 `json:"rtt_ms"`
		}
		if err := json.Unmarshal(out, &peers); err != nil {
			t.Fatalf("cluster peers --json: %v: %s", err, out)
		}
		rtt = map[int]float64{}
		for _, p := range peers {
			if i := index[p.PeerID]; i != 0 {
				rtt[i] = p.RTT
			}
		}
		// 2*60 ms against 2*2 ms, with room for a slow machine
		if rtt[2] > 0 && rtt[3] >= 100 && rtt[3] > rtt[2]+80 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1's RTTs (ms) by node: %v; want node 3 about 120, node 2 about 4", rtt)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("node 1's RTTs (ms) by node: %v", rtt)
}
