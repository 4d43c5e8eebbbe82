package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// daemonCluster is a cluster of real daemons run in the test's process
// (RunDaemon): libp2p over loopback, raft, embedded ZDBs, the API and the
// gateway, as `fungi testnet` runs them in processes, but a test can stop
// one by cancelling it and starts them in a few seconds.
type daemonCluster struct {
	t     testing.TB
	nodes []*daemonNode
}

// daemonNode is one daemon of a daemonCluster.
type daemonNode struct {
	i      int // 1-based
	path   string
	addr   string // API host:port
	api    *APIClient
	peer   string
	gw     string // gateway host:port
	cancel context.CancelFunc
	done   chan error
	log    *os.File
	alive  bool
}

// startDaemonCluster starts n daemons: node 1 founds the cluster, the
// others join through it with its secret. configure, if set, adjusts
// every node's config before its repo is created. It returns once every
// node sees every member, the voters and every member's capacity (what
// placement needs).
func startDaemonCluster(t testing.TB, n int, configure func(c *Config)) *daemonCluster {
	t.Helper()
	dc := &daemonCluster{t: t}
	root := t.TempDir()
	t.Cleanup(dc.stopAll) // before the directories go (cleanups run last first)
	var secret string
	var boot []string
	for i := 1; i <= n; i++ {
		cfg := DefaultConfig()
		cfg.API = "127.0.0.1:0"
		cfg.Gateway.Listen = "127.0.0.1:0"
		cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.P2P.Bootstrap = boot
		cfg.IPFS.DHT = ToggleOff
		if configure != nil {
			configure(&cfg)
		}
		path := filepath.Join(root, "node"+strconv.Itoa(i))
		if err := Init(path, InitOptions{Config: cfg, Secret: secret}); err != nil {
			t.Fatal(err)
		}
		dn := &daemonNode{i: i, path: path}
		dc.nodes = append(dc.nodes, dn)
		dc.start(dn)
		if i == 1 {
			b, err := os.ReadFile(filepath.Join(path, secretFile))
			if err != nil {
				t.Fatal(err)
			}
			secret = strings.TrimSpace(string(b))
			id := dc.id(dn)
			boot = []string{id.Addrs[0] + "/p2p/" + id.PeerID}
		}
	}
	dc.waitFor("the cluster to form", time.Minute, func() error {
		for _, dn := range dc.nodes {
			if err := dc.ready(dn); err != nil {
				return err
			}
		}
		return nil
	})
	return dc
}

// start runs dn's daemon and waits for its API.
func (dc *daemonCluster) start(dn *daemonNode) {
	dc.t.Helper()
	logf, err := os.OpenFile(filepath.Join(dn.path, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		dc.t.Fatal(err)
	}
	dn.log = logf
	ctx, cancel := context.WithCancel(context.Background())
	dn.cancel, dn.done = cancel, make(chan error, 1)
	ready := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		dn.done <- RunDaemon(ctx, dn.path, DaemonOptions{Logger: log, Ready: func(a string) { ready <- a }})
	}()
	select {
	case dn.addr = <-ready:
	case err := <-dn.done:
		dc.t.Fatalf("node %d: %v", dn.i, err)
	case <-time.After(30 * time.Second):
		dc.t.Fatalf("node %d: no API after 30 s\n%s", dn.i, dc.logTail())
	}
	dn.api = NewAPIClient(dn.addr)
	dn.alive = true
	id := dc.id(dn)
	dn.peer, dn.gw = id.PeerID, id.Gateway
}

// stop ends dn's daemon (its host closes: its peers' connections drop)
// and waits for it.
func (dc *daemonCluster) stop(dn *daemonNode) {
	if !dn.alive {
		return
	}
	dn.alive = false
	dn.cancel()
	select {
	case err := <-dn.done:
		if err != nil {
			dc.t.Logf("node %d stopped: %v", dn.i, err)
		}
	case <-time.After(30 * time.Second):
		dc.t.Errorf("node %d did not stop in 30 s", dn.i)
	}
	dn.log.Close()
}

func (dc *daemonCluster) stopAll() {
	var wg sync.WaitGroup
	for _, dn := range dc.nodes {
		wg.Go(func() { dc.stop(dn) })
	}
	wg.Wait()
}

func (dc *daemonCluster) id(dn *daemonNode) *ID {
	dc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := dn.api.ID(ctx)
	if err != nil || len(id.Addrs) == 0 {
		dc.t.Fatalf("node %d id: %+v %v", dn.i, id, err)
	}
	return id
}

// ready says why dn's view of the cluster is not complete yet (nil: it is).
func (dc *daemonCluster) ready(dn *daemonNode) error {
	st, err := dc.status(dn)
	switch {
	case err != nil:
		return fmt.Errorf("node %d: %v", dn.i, err)
	case st.Leader == "":
		return fmt.Errorf("node %d knows no leader", dn.i)
	case !slices.Contains([]string{"leader", "voter", "nonvoter"}, st.Role):
		return fmt.Errorf("node %d is not in the raft configuration (%s)", dn.i, st.Role)
	case st.Metadata.Members != len(dc.nodes):
		return fmt.Errorf("node %d sees %d of %d members", dn.i, st.Metadata.Members, len(dc.nodes))
	case len(st.Voters) != min(len(dc.nodes), 3):
		return fmt.Errorf("node %d sees %d voters", dn.i, len(st.Voters))
	}
	for _, m := range st.Members {
		if m.Capacity == 0 {
			return fmt.Errorf("node %d sees no capacity from %s", dn.i, m.ID)
		}
	}
	return nil
}

func (dc *daemonCluster) status(dn *daemonNode) (*ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return dn.api.ClusterStatus(ctx)
}

// leader is the node that leads now.
func (dc *daemonCluster) leader() *daemonNode {
	dc.t.Helper()
	var out *daemonNode
	dc.waitFor("a leader", 20*time.Second, func() error {
		for _, dn := range dc.nodes {
			if !dn.alive {
				continue
			}
			if st, err := dc.status(dn); err == nil && st.Role == "leader" {
				out = dn
				return nil
			}
		}
		return fmt.Errorf("no live node leads")
	})
	return out
}

// byPeer is the node with that peer ID.
func (dc *daemonCluster) byPeer(id string) *daemonNode {
	for _, dn := range dc.nodes {
		if dn.peer == id {
			return dn
		}
	}
	return nil
}

// waitFor polls cond until it holds or the time is up.
func (dc *daemonCluster) waitFor(what string, limit time.Duration, cond func() error) {
	dc.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			dc.t.Fatalf("waiting for %s: %v\n%s", what, err, dc.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail is the end of every node's log, for failure messages.
func (dc *daemonCluster) logTail() string {
	var b strings.Builder
	for _, dn := range dc.nodes {
		log, _ := os.ReadFile(filepath.Join(dn.path, "daemon.log"))
		if len(log) > 2000 {
			log = log[len(log)-2000:]
		}
		fmt.Fprintf(&b, "--- node %d\n%s\n", dn.i, log)
	}
	return b.String()
}

// metric sums a counter's series on dn (all labels).
func (dc *daemonCluster) metric(dn *daemonNode, name string) float64 {
	dc.t.Helper()
	resp, err := http.Get("http://" + dn.addr + "/metrics")
	if err != nil {
		dc.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			dc.t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// fragments is how many fragments the live nodes' ZDBs hold in all.
func (dc *daemonCluster) fragments() int64 {
	dc.t.Helper()
	var n int64
	for _, dn := range dc.nodes {
		if !dn.alive {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := dn.api.RepoStat(ctx)
		cancel()
		if err != nil {
			dc.t.Fatal(err)
		}
		n += st.Fragments
	}
	return n
}

// catAll reads an object through dn's API (cat).
func catAll(t testing.TB, dn *daemonNode, c string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pc, err := ParseCID(c)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := dn.api.CatRange(ctx, pc, 0, -1)
	if err != nil {
		t.Fatalf("cat %s on node %d: %v", c, dn.i, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("cat %s on node %d: %v", c, dn.i, err)
	}
	return b
}
