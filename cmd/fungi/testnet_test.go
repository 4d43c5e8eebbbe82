package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if out, err := run("up", "-n", "3", "--dir", dir); err != nil {
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
	for _, n := range st {
		if n["alive"] != true || n["api"] == "" || n["index"] == nil || n["peer_id"] == "" {
			t.Fatalf("node not alive: %v", n)
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
